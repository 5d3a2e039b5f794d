package firewall

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/runner"
)

func TestUFWRoutedFix(t *testing.T) {
	fix, err := UFWRoutedFix("virbr0", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range fix.Commands {
		got = append(got, c.String())
	}
	want := []string{"ufw route allow in on virbr0 out on eth0", "ufw allow in on virbr0"}
	if !slices.Equal(got, want) || fix.Code != "ufw_routed_blocked" {
		t.Fatalf("commands %q, want %q", got, want)
	}
	assertNeverDangerous(t, fix)
}

func TestDockerForwardFix(t *testing.T) {
	fix, err := DockerForwardFix("virbr0", "eth0", "192.168.122.1/24", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iptables -I DOCKER-USER -o virbr0 -d 192.168.122.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"iptables -I DOCKER-USER -i virbr0 -o eth0 -s 192.168.122.0/24 -j ACCEPT",
	}
	for i, c := range fix.Commands {
		if c.String() != want[i] {
			t.Fatalf("command %d = %q, want %q", i, c.String(), want[i])
		}
		if strings.Replace(runner.Quote(c.Check), " -C ", " -I ", 1) != want[i] {
			t.Fatalf("check %q does not mirror the command", runner.Quote(c.Check))
		}
	}
	if !strings.Contains(fix.Persist, "netfilter-persistent") {
		t.Fatalf("persist text %q", fix.Persist)
	}
	assertNeverDangerous(t, fix)
}

func assertNeverDangerous(t *testing.T, fix Fix) {
	t.Helper()
	for _, c := range fix.Commands {
		for _, a := range c.Argv {
			if a == "disable" || a == "-P" || a == "--policy" || a == "-F" || a == "reset" {
				t.Fatalf("fix %s contains a forbidden operation: %s", fix.Code, c)
			}
		}
	}
}

func TestFixBadInput(t *testing.T) {
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"ufw bridge with space", func() error { _, err := UFWRoutedFix("virbr0 out on x", "eth0"); return err }, "not a valid Linux interface name"},
		{"ufw empty uplink", func() error { _, err := UFWRoutedFix("virbr0", ""); return err }, "uplink"},
		{"docker option injection", func() error { _, err := DockerForwardFix("-j", "eth0", "192.168.122.0/24", ""); return err }, "bridge"},
		{"docker bad subnet", func() error { _, err := DockerForwardFix("virbr0", "eth0", "192.168.122.0", ""); return err }, "IPv4 CIDR"},
		{"docker odd iptables", func() error { _, err := DockerForwardFix("virbr0", "eth0", "10.0.0.0/8", "sh"); return err }, "iptables command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFixerApply(t *testing.T) {
	ctx := context.Background()
	fix, _ := DockerForwardFix("virbr0", "eth0", "192.168.122.0/24", "")
	ret, eg := fix.Commands[0], fix.Commands[1]
	absent := runner.FakeResponse{ExitCode: 1, Stderr: "iptables: Bad rule (does a matching rule exist in that chain?)."}

	t.Run("dry run runs nothing", func(t *testing.T) {
		f := runner.NewFake()
		steps, err := NewFixer(f).Apply(ctx, fix, true)
		if err != nil || len(steps) != 2 || steps[0].Ran || len(f.Calls()) != 0 {
			t.Fatalf("steps %+v err %v calls %v", steps, err, f.Calls())
		}
	})
	t.Run("adds missing rules", func(t *testing.T) {
		f := runner.NewFake().Set(absent, ret.Check...).Set(absent, eg.Check...).
			SetOutput("", ret.Argv...).SetOutput("", eg.Argv...)
		steps, err := NewFixer(f).Apply(ctx, fix, false)
		if err != nil || !steps[0].Ran || !steps[1].Ran {
			t.Fatalf("steps %+v err %v", steps, err)
		}
		if len(f.Calls()) != 4 {
			t.Fatalf("calls %v", f.Calls())
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		f := runner.NewFake().SetOutput("", ret.Check...).SetOutput("", eg.Check...)
		steps, err := NewFixer(f).Apply(ctx, fix, false)
		if err != nil || steps[0].Ran || !steps[0].AlreadyPresent || !steps[1].AlreadyPresent || len(f.Calls()) != 2 {
			t.Fatalf("steps %+v err %v calls %v", steps, err, f.Calls())
		}
	})
	t.Run("missing chain is an error naming the command", func(t *testing.T) {
		f := runner.NewFake().Set(runner.FakeResponse{ExitCode: 2, Stderr: "iptables v1.8.9 (nf_tables): chain `DOCKER-USER' does not exist"}, ret.Check...)
		_, err := NewFixer(f).Apply(ctx, fix, false)
		if err == nil || !strings.Contains(err.Error(), "DOCKER-USER") || !strings.Contains(err.Error(), "forward_policy_drop") {
			t.Fatalf("err = %v", err)
		}
	})
}
