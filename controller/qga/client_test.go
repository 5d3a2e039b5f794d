package qga

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestViewAnswered(t *testing.T) {
	f := &fakeAgent{answers: map[string]any{
		"guest-network-get-interfaces": readTestdata(t, "interfaces-debian12.json"),
		"guest-get-osinfo":             readTestdata(t, "osinfo-debian12.json"),
		"guest-get-host-name":          `{"return":{"host-name":"web1\u001b]0;pwned\u0007"}}`,
	}}
	v := View(context.Background(), NewClient(f, "web1", time.Second))
	if !v.Answered || v.Error != "" {
		t.Fatalf("view = %+v", v)
	}
	if len(v.Interfaces) != 1 || v.Interfaces[0].Name != "enp1s0" || v.Interfaces[0].MAC != "52:54:00:7a:1b:2c" ||
		len(v.Interfaces[0].IPv4) != 1 || v.Interfaces[0].IPv4[0] != "192.168.122.57/24" {
		t.Errorf("interfaces = %+v", v.Interfaces)
	}
	if v.OS == nil || v.OS.ID != "debian" || v.OS.Machine != "x86_64" {
		t.Errorf("os = %+v", v.OS)
	}
	if v.HostName != "web1?]0;pwned?" {
		t.Errorf("host name not sanitised: %q", v.HostName)
	}
}

func TestViewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"no channel", fmt.Errorf("%w: QEMU guest agent is not configured", ErrNotConfigured), "no org.qemu.guest_agent.0 channel"},
		{"not answering", fmt.Errorf("%w: Guest agent is not responding: QEMU guest agent is not connected", ErrNotResponding), "not installed or not running"},
		{"shut off", fmt.Errorf("%w: domain is not running", ErrDomainNotRunning), "not running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAgent{answers: map[string]any{"guest-network-get-interfaces": tc.err}}
			v := View(context.Background(), NewClient(f, "vm", time.Second))
			if v.Answered || !strings.Contains(v.Error, tc.want) {
				t.Fatalf("view = %+v, want error containing %q", v, tc.want)
			}
			if len(f.calls) != 1 {
				t.Errorf("calls after a failed interface query: %v", f.calls)
			}
		})
	}
}

// TestViewBoundedByContext: a Commander that honours ctx ends the view at the client's timeout.
func TestViewBoundedByContext(t *testing.T) {
	f := &fakeAgent{answers: map[string]any{"guest-network-get-interfaces": func(map[string]any) (string, error) {
		time.Sleep(2 * time.Second)
		return "", errors.New("late")
	}}}
	hang := commanderFunc(func(ctx context.Context, d, c string, to time.Duration) (string, error) {
		ch := make(chan struct{})
		go func() { _, _ = f.QemuAgentCommand(ctx, d, c, to); close(ch) }()
		select {
		case <-ch:
			return "", errors.New("late")
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	t0 := time.Now()
	v := View(context.Background(), NewClient(hang, "vm", 100*time.Millisecond))
	if took := time.Since(t0); took > time.Second {
		t.Errorf("took %s", took)
	}
	if v.Answered || !strings.Contains(v.Error, "did not answer in time") {
		t.Errorf("view = %+v", v)
	}
}

type commanderFunc func(ctx context.Context, domain, command string, timeout time.Duration) (string, error)

func (f commanderFunc) QemuAgentCommand(ctx context.Context, domain, command string, timeout time.Duration) (string, error) {
	return f(ctx, domain, command, timeout)
}

func TestRunPollsUntilExit(t *testing.T) {
	polls := 0
	f := &fakeAgent{answers: map[string]any{
		"guest-exec": func(args map[string]any) (string, error) {
			if args["path"] != "/usr/bin/sha256sum" || fmt.Sprint(args["arg"]) != "[/var/tmp/x]" || args["capture-output"] != true {
				return "", fmt.Errorf("args %v", args)
			}
			return `{"return":{"pid":4242}}`, nil
		},
		"guest-exec-status": func(args map[string]any) (string, error) {
			if args["pid"] != float64(4242) {
				return "", fmt.Errorf("pid %v", args["pid"])
			}
			polls++
			if polls < 3 {
				return `{"return":{"exited":false}}`, nil
			}
			return readTestdata(t, "exec-status-sha256.json"), nil
		},
	}}
	st, err := NewClient(f, "vm", time.Second).Run(context.Background(), "/usr/bin/sha256sum", "/var/tmp/x")
	if err != nil {
		t.Fatal(err)
	}
	if polls != 3 || st.ExitCode != 0 || !strings.HasPrefix(FirstLine(st.Stdout), "e3b0c442") {
		t.Errorf("polls=%d status=%+v out=%q", polls, st, st.Stdout)
	}
}

func TestFileWriteShort(t *testing.T) {
	f := &fakeAgent{answers: map[string]any{"guest-file-write": `{"return":{"count":3,"eof":false}}`}}
	err := NewClient(f, "vm", time.Second).FileWrite(context.Background(), 7, []byte("hello"))
	if err == nil || !strings.Contains(err.Error(), "wrote 3 of 5 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestDisabled(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&AgentError{Class: "CommandDisabled", Desc: "x"}, true},
		{errors.New("internal error: unable to execute QEMU agent command 'guest-exec': The command guest-exec has been disabled for this instance"), true},
		{errors.New("Command guest-exec has been disabled"), true},
		{errors.New("guest agent is not responding"), false},
		{nil, false},
	} {
		if got := Disabled(tc.err); got != tc.want {
			t.Errorf("Disabled(%v) = %v", tc.err, got)
		}
	}
}

func TestReplyTooLarge(t *testing.T) {
	_, err := ParseInterfaces(`{"return":[` + strings.Repeat(" ", MaxReplyBytes) + `]}`)
	if !errors.Is(err, ErrReplyTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestInterfacesCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"return":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"name":"eth` + fmt.Sprint(i) + `","ip-addresses":[`)
		for j := 0; j < 50; j++ {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"ip-address-type":"ipv4","ip-address":"10.%d.%d.1","prefix":24}`, i%250, j)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	ifs, err := ParseInterfaces(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != MaxInterfaces || len(ifs[0].IPv4) != MaxAddresses {
		t.Fatalf("%d interfaces, %d addresses", len(ifs), len(ifs[0].IPv4))
	}
}
