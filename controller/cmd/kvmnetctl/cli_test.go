package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

type fakeAgent struct {
	kvmnetv1.UnimplementedAgentServer
}

func (fakeAgent) GetState(context.Context, *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	return &kvmnetv1.GuestState{
		Hostname: "vm1", AgentVersion: "v1.2.3",
		Os: &kvmnetv1.OSInfo{PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Interfaces: []*kvmnetv1.Interface{{Name: "enp1s0", Mac: "52:54:00:aa:bb:cc", Kind: "virtio", OperState: "up",
			Ipv4: []string{"192.168.122.50/24"}, DefaultRouteV4: true, Stack: kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER}},
		NetworkManager: &kvmnetv1.NetworkManagerState{Running: true, Version: "1.42.4",
			Profiles: []*kvmnetv1.Profile{{Id: "kvm-dhcp"}}},
		Config: &kvmnetv1.AgentConfig{AllowApply: true},
	}, nil
}

// startAgent serves the fake agent on a unix socket and returns its address.
func startAgent(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := transport.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(fakeAgent{}, server.Options{})
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return "unix:" + path
}

func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &Globals{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	code = run(context.Background(), args, g)
	return out.String(), errb.String(), code
}

func TestAgentStateJSON(t *testing.T) {
	addr := startAgent(t)
	out, errs, code := runCLI(t, nil, "agent", "state", "--addr", addr, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var st struct {
		Hostname   string `json:"hostname"`
		Interfaces []struct {
			Name string   `json:"name"`
			IPv4 []string `json:"ipv4"`
		} `json:"interfaces"`
		Config struct {
			AllowApply bool `json:"allow_apply"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, out)
	}
	if st.Hostname != "vm1" || len(st.Interfaces) != 1 || st.Interfaces[0].IPv4[0] != "192.168.122.50/24" || !st.Config.AllowApply {
		t.Fatalf("unexpected state: %+v", st)
	}
}

func TestAgentStateTableAndYAML(t *testing.T) {
	addr := startAgent(t)
	out, errs, code := runCLI(t, nil, "agent", "state", "--addr", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"INTERFACE", "enp1s0", "52:54:00:aa:bb:cc", "192.168.122.50/24", "network_manager",
		"host vm1, Debian GNU/Linux 12 (bookworm), agent v1.2.3, NetworkManager 1.42.4 (1 profiles), allow_apply=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes written to a non-terminal:\n%q", out)
	}
	out, _, code = runCLI(t, nil, "agent", "state", "--addr", addr, "-o", "yaml")
	if code != 0 || !strings.Contains(out, "hostname: vm1\n") {
		t.Fatalf("yaml exit %d:\n%s", code, out)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"version", []string{"version"}, 0, ""},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", []string{"version", "--frob"}, 2, "unknown flag"},
		{"bad output format", []string{"version", "-o", "xml"}, 2, `output format "xml"`},
		{"missing --addr", []string{"agent", "state"}, 2, `"addr" not set`},
		{"bad address", []string{"agent", "state", "--addr", "tcp:x"}, 2, "unknown scheme"},
		{"agent unreachable", []string{"agent", "state", "--addr", "unix:" + filepath.Join(dir, "none.sock"), "--timeout", "2s"}, 2, "no such file"},
		{"extra argument", []string{"version", "x"}, 2, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := runCLI(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Fatalf("exit %d stderr %q; want %d containing %q", code, errs, tc.code, tc.msg)
			}
		})
	}
}

func TestConnectDefault(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"built-in default", nil, nil, "qemu:///system"},
		{"from LIBVIRT_DEFAULT_URI", map[string]string{"LIBVIRT_DEFAULT_URI": "qemu:///session"}, nil, "qemu:///session"},
		{"flag wins", map[string]string{"LIBVIRT_DEFAULT_URI": "qemu:///session"}, []string{"-c", "qemu+ssh://h/system"}, "qemu+ssh://h/system"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := &Globals{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(k string) string { return tc.env[k] }}
			root := newRootCmd(g)
			root.SetArgs(append(tc.args, "version"))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if g.Connect != tc.want {
				t.Fatalf("connect = %q, want %q", g.Connect, tc.want)
			}
		})
	}
}

func TestCompletionAndMan(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, errs, code := runCLI(t, nil, "completion", sh)
		if code != 0 || !strings.Contains(out, "kvmnetctl") {
			t.Fatalf("completion %s: exit %d %s", sh, code, errs)
		}
	}
	dir := filepath.Join(t.TempDir(), "man")
	if _, errs, code := runCLI(t, nil, "man", "--dir", dir); code != 0 {
		t.Fatalf("man: exit %d %s", code, errs)
	}
	for _, page := range []string{"kvmnetctl.1", "kvmnetctl-agent-state.1", "kvmnetctl-version.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(".TH")) {
			t.Fatalf("%s is not a man page:\n%s", page, b)
		}
	}
	if _, _, code := runCLI(t, nil, "man"); code != 2 {
		t.Fatalf("man without --dir: exit %d, want 2", code)
	}
}

// TestGroupsExist: the guests and host groups are in place for their subcommands.
func TestGroupsExist(t *testing.T) {
	root := newRootCmd(&Globals{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	for _, name := range []string{"guests", "host", "agent", "version", "man"} {
		if c, _, err := root.Find([]string{name}); err != nil || c == root {
			t.Errorf("command %q missing: %v", name, err)
		}
	}
}
