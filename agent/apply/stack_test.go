package apply

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/netstack"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// cmdLog is a netstack.Runner that records commands and fails the ones in fail with their output.
type cmdLog struct {
	mu   sync.Mutex
	ran  []string
	fail map[string]string
	// onRun is called after each successful command (e.g. a lease "arrives" after netplan apply).
	onRun func(cmd string)
}

func (c *cmdLog) Run(_ context.Context, argv ...string) ([]byte, error) {
	cmd := strings.Join(argv, " ")
	c.mu.Lock()
	c.ran = append(c.ran, cmd)
	out, failed := c.fail[cmd]
	c.mu.Unlock()
	if failed {
		return []byte(out), errors.New("exit status 1")
	}
	if c.onRun != nil {
		c.onRun(cmd)
	}
	return nil, nil
}

func (c *cmdLog) commands() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.ran, "; ")
}

// addrs is an AddrReader whose answer the test sets.
type addrs struct {
	mu sync.Mutex
	v4 map[string][]string
}

func (a *addrs) set(ifname string, v4 ...string) {
	a.mu.Lock()
	a.v4[ifname] = v4
	a.mu.Unlock()
}

func (a *addrs) IPv4(ifname string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.v4[ifname], nil
}

const userNetplan = "network:\n  version: 2\n  ethernets:\n    ens3:\n      dhcp4: true\n"

type stackEnv struct {
	root  string
	a     *Applier
	cmds  *cmdLog
	addrs *addrs
}

// newStackEnv is a netplan guest (Debian cloud style) whose NIC ens2 has MAC mac1 while the user's
// netplan file names ens3: the real agent/netstack backends over a temporary root, fake commands.
func newStackEnv(t *testing.T, fx map[string]string, cfg config.Config) *stackEnv {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc/netplan", "etc/systemd/network", "etc/network/interfaces.d", "run/systemd/netif/links"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// networkd runs (its state file; the directories alone exist on every Debian 12 boot).
	fx = maps.Clone(fx)
	if _, ok := fx["run/systemd/netif/state"]; !ok {
		if fx == nil {
			fx = map[string]string{}
		}
		fx["run/systemd/netif/state"] = "OPER_STATE=routable\n"
	}
	for p, c := range fx {
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	store, err := managedfile.New(managedfile.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	det, err := netstack.New(netstack.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	sel := netstack.NewSelector(det, netstack.NewChooser([]netstack.Backend{netstack.NewNetplan(root), netstack.NewNetworkd(root), netstack.NewIfupdown(root)}, cfg.DisabledStacks()))
	ad := &addrs{v4: map[string][]string{}}
	cmds := &cmdLog{fail: map[string]string{}}
	cmds.onRun = func(cmd string) {
		if cmd == "netplan apply" || strings.HasPrefix(cmd, "networkctl reconfigure") || strings.HasPrefix(cmd, "systemctl restart ifup@") {
			ad.set("ens2", "192.168.122.50/24")
		}
	}
	cfg.Root = root
	a := New(Options{Config: cfg, Files: store, NICs: fixedNICs{{Name: "ens2", MAC: mac1}}, Stacks: sel, Runner: cmds, Addrs: ad})
	t.Cleanup(func() { _ = a.Close() })
	return &stackEnv{root: root, a: a, cmds: cmds, addrs: ad}
}

func (e *stackEnv) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, rel))
	if errors.Is(err, os.ErrNotExist) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fixReq(dry bool) *kvmnetv1.ApplyRequest {
	return &kvmnetv1.ApplyRequest{DryRun: dry, RollbackTimeoutSeconds: 30, Actions: []*kvmnetv1.Action{
		removeConflicts(mac1), ensure(mac1, kvmnetv1.IPv6Method_IPV6_METHOD_DISABLED, 5)}}
}

func TestNetplanApplyRollback(t *testing.T) {
	e := newStackEnv(t, map[string]string{"etc/netplan/50-cloud-init.yaml": userNetplan}, config.Default())
	ctx := context.Background()

	dry, err := e.a.Apply(ctx, fixReq(true))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range dry.Changes {
		kinds = append(kinds, c.Kind+":"+c.Target)
	}
	if strings.Join(kinds, " ") != "file:/etc/netplan/90-kvmnet.yaml file:/etc/netplan/50-cloud-init.yaml stack:netplan:ens2" {
		t.Fatalf("dry-run changes %q", kinds)
	}
	if !strings.Contains(dry.Changes[0].Diff, "+    kvmnet-ens2:") || !strings.Contains(dry.Changes[1].Diff, "-    ens3:") ||
		!strings.Contains(dry.Changes[2].Diff, "netplan_neutralised=/etc/netplan/50-cloud-init.yaml:ens3") {
		t.Fatalf("dry-run diffs:\n%s\n%s\n%s", dry.Changes[0].Diff, dry.Changes[1].Diff, dry.Changes[2].Diff)
	}
	if e.cmds.commands() != "" || e.read(t, "etc/netplan/90-kvmnet.yaml") != "<absent>" {
		t.Fatal("dry run changed something")
	}

	resp, err := e.a.Apply(ctx, fixReq(false))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.cmds.commands(); got != "netplan generate; netplan apply" {
		t.Fatalf("commands %q", got)
	}
	own := e.read(t, "etc/netplan/90-kvmnet.yaml")
	if !strings.HasPrefix(own, managedfile.Header) || !strings.Contains(own, `macaddress: "`+mac1+`"`) {
		t.Fatalf("own file %q", own)
	}
	if fi, _ := os.Stat(filepath.Join(e.root, "etc/netplan/90-kvmnet.yaml")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if user := e.read(t, "etc/netplan/50-cloud-init.yaml"); !strings.HasPrefix(user, managedfile.Header) || strings.Contains(user, "    ens3:") {
		t.Fatalf("user file not neutralised: %q", user)
	}
	last := resp.Changes[len(resp.Changes)-1]
	if !strings.Contains(last.Summary, "got 192.168.122.50/24") {
		t.Fatalf("summary %q", last.Summary)
	}
	st := e.read(t, "var/lib/kvmnet/state.json")
	if !strings.Contains(st, "/etc/netplan/50-cloud-init.yaml") || !strings.Contains(st, "/etc/netplan/90-kvmnet.yaml") {
		t.Fatalf("state.json does not list the files: %s", st)
	}

	// The host never confirms: Rollback (what the deadline does) puts the user's file back.
	restored, err := e.a.Rollback(ctx, resp.CheckpointId)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restored: %q", restored)
	if e.read(t, "etc/netplan/50-cloud-init.yaml") != userNetplan || e.read(t, "etc/netplan/90-kvmnet.yaml") != "<absent>" {
		t.Fatal("rollback did not restore the original files")
	}
	if got := e.cmds.commands(); got != "netplan generate; netplan apply; netplan generate; netplan apply" {
		t.Fatalf("commands after rollback %q", got)
	}
}

func TestNetplanGenerateFailureRollsBack(t *testing.T) {
	e := newStackEnv(t, map[string]string{"etc/netplan/50-cloud-init.yaml": userNetplan}, config.Default())
	e.cmds.fail["netplan generate"] = "/etc/netplan/60-x.yaml:4:7: Error in network definition: unknown key 'dhcp5'"
	_, err := e.a.Apply(context.Background(), fixReq(false))
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "unknown key 'dhcp5'") {
		t.Fatalf("err = %v", err)
	}
	if e.read(t, "etc/netplan/50-cloud-init.yaml") != userNetplan || e.read(t, "etc/netplan/90-kvmnet.yaml") != "<absent>" || e.a.Pending() != nil {
		t.Fatal("failed apply left changes behind")
	}
}

func TestStackConflictWritesNothing(t *testing.T) {
	e := newStackEnv(t, map[string]string{
		"etc/netplan/50-cloud-init.yaml": "network:\n  ethernets:\n    ens2: {dhcp4: true}\n",
		"etc/network/interfaces":         "allow-hotplug ens2\niface ens2 inet dhcp\n",
	}, config.Default())
	_, err := e.a.Apply(context.Background(), fixReq(false))
	if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "netplan (/etc/netplan/50-cloud-init.yaml") || !strings.Contains(err.Error(), "ifupdown (/etc/network/interfaces") {
		t.Fatalf("err = %v", err)
	}
	if e.cmds.commands() != "" || e.read(t, "etc/netplan/90-kvmnet.yaml") != "<absent>" {
		t.Fatal("a conflict changed something")
	}
}

func TestStackOptOut(t *testing.T) {
	cfg := config.Default()
	cfg.ManageNetplan = false
	e := newStackEnv(t, map[string]string{"etc/netplan/50-cloud-init.yaml": userNetplan}, cfg)
	_, err := e.a.Apply(context.Background(), fixReq(true))
	if !errors.Is(err, ErrOptedOut) || !strings.Contains(err.Error(), "manage_netplan") {
		t.Fatalf("err = %v", err)
	}
}

func TestNetworkdAndIfupdownApply(t *testing.T) {
	t.Run("networkd", func(t *testing.T) {
		e := newStackEnv(t, map[string]string{"etc/systemd/network/20-wired.network": "[Match]\nName=ens3\n[Network]\nDHCP=yes\n"}, config.Default())
		resp, err := e.a.Apply(context.Background(), fixReq(false))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.cmds.commands(); got != "networkctl reload; networkctl reconfigure ens2" {
			t.Fatalf("commands %q", got)
		}
		if !strings.Contains(e.read(t, "etc/systemd/network/10-kvmnet-525400000001.network"), "DHCP=ipv4") {
			t.Fatalf("no .network file: %v", resp.Changes)
		}
		if _, err := e.a.Rollback(context.Background(), resp.CheckpointId); err != nil {
			t.Fatal(err)
		}
		if e.read(t, "etc/systemd/network/20-wired.network") != "[Match]\nName=ens3\n[Network]\nDHCP=yes\n" || e.read(t, "etc/systemd/network/10-kvmnet-525400000001.network") != "<absent>" {
			t.Fatal("rollback did not restore")
		}
	})
	t.Run("ifupdown", func(t *testing.T) {
		e := newStackEnv(t, map[string]string{"etc/network/interfaces": "auto lo\niface lo inet loopback\nallow-hotplug eth0\niface eth0 inet dhcp\n"}, config.Default())
		if err := os.RemoveAll(filepath.Join(e.root, "run/systemd/netif")); err != nil {
			t.Fatal(err)
		}
		resp, err := e.a.Apply(context.Background(), fixReq(false))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.cmds.commands(); got != "systemctl restart ifup@ens2.service; journalctl --no-pager -o cat -n 20 -u ifup@ens2.service" {
			t.Fatalf("commands %q", got)
		}
		if !strings.Contains(e.read(t, "etc/network/interfaces"), "source /etc/network/interfaces.d/*") {
			t.Fatal("interfaces does not source interfaces.d")
		}
		if _, err := e.a.Rollback(context.Background(), resp.CheckpointId); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.cmds.commands(), "systemctl restart ifup@ens2.service; journalctl --no-pager -o cat -n 20 -u ifup@ens2.service; systemctl stop ifup@ens2.service") {
			t.Fatalf("rollback commands %q", e.cmds.commands())
		}
		if e.read(t, "etc/network/interfaces") != "auto lo\niface lo inet loopback\nallow-hotplug eth0\niface eth0 inet dhcp\n" {
			t.Fatal("rollback did not restore interfaces")
		}
	})
}

// TestStackResumeAfterKill: an agent killed while a netplan fix is pending (or in the middle of
// it) is undone by the next agent process from the on-disk record: the user's file comes back and
// netplan generates and applies it again.
func TestStackResumeAfterKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(r *Record)
	}{
		{name: "guest rebooted while pending"},
		{name: "killed in the middle of the Apply", edit: func(r *Record) { r.Applying = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newStackEnv(t, map[string]string{"etc/netplan/50-cloud-init.yaml": userNetplan}, config.Default())
			rec := FileRecords{Path: filepath.Join(e.root, managedfile.DefaultStateDir, RecordFile)}
			e.a.o.Records, e.a.o.Sysctl = rec, ProcSysctl{Root: e.root}
			setBoot(t, e.root, "boot-1")
			if _, err := e.a.Apply(context.Background(), fixReq(false)); err != nil {
				t.Fatal(err)
			}
			r, err := rec.Load()
			if err != nil || r == nil || len(r.Stacks) != 1 || r.Stacks[0].Backend != "netplan" {
				t.Fatalf("record %+v %v", r, err)
			}
			if tc.edit != nil {
				tc.edit(r)
				if err := rec.Save(r); err != nil {
					t.Fatal(err)
				}
			} else {
				setBoot(t, e.root, "boot-2")
			}
			e.a.pending.timer.Stop()
			e.a.setPending(nil)
			cmds := &cmdLog{}
			a := New(Options{Config: e.a.o.Config, Files: e.a.o.Files, Sysctl: ProcSysctl{Root: e.root}, NICs: e.a.o.NICs,
				Records: rec, Stacks: e.a.o.Stacks, Runner: cmds, Addrs: e.addrs})
			t.Cleanup(func() { _ = a.Close() })
			restored, err := a.Resume(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("restored: %q", restored)
			if e.read(t, "etc/netplan/50-cloud-init.yaml") != userNetplan || e.read(t, "etc/netplan/90-kvmnet.yaml") != "<absent>" {
				t.Fatal("files not restored at start-up")
			}
			if cmds.commands() != "netplan generate; netplan apply" {
				t.Fatalf("commands at start-up %q", cmds.commands())
			}
		})
	}
}
