package netstack

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

// fakeRunner records commands and answers from a map of "argv" → error/output.
type fakeRunner struct {
	ran  []string
	fail map[string]string // command → output of a failure
	out  map[string]string
}

func (f *fakeRunner) Run(_ context.Context, argv ...string) ([]byte, error) {
	c := strings.Join(argv, " ")
	f.ran = append(f.ran, c)
	if o, ok := f.fail[c]; ok {
		return []byte(o), errors.New("exit status 1")
	}
	return []byte(f.out[c]), nil
}

const (
	macA = "52:54:00:aa:00:01"
	macB = "52:54:00:aa:00:02"
)

var ens2 = []NIC{{Name: "ens2", MAC: macA}}

func fileOf(p *Plan, path string) *FileChange {
	for i := range p.Files {
		if p.Files[i].Path == path {
			return &p.Files[i]
		}
	}
	return nil
}

// cloudInitStale is a Debian cloud image's netplan file from a guest whose NIC was ens3.
const cloudInitStale = `# This file is generated from information provided by the datasource.
network:
  version: 2
  ethernets:
    ens3:
      dhcp4: true
      # keep the old address stable
      dhcp-identifier: mac
    lan0:
      match:
        macaddress: "52:54:00:ff:ff:ff"
      addresses: [10.1.0.5/24]
`

func TestNetplanPlanGolden(t *testing.T) {
	root := build(t, map[string]string{
		"etc/netplan/50-cloud-init.yaml": cloudInitStale,
		"lib/netplan/00-keep.yaml":       "network:\n  version: 2\n  ethernets:\n    eth7: {dhcp4: true}\n",
	})
	b := NewNetplan(root)
	p, err := b.Plan(Target{NIC: ens2[0], IPv6: "disabled", All: ens2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 2 {
		t.Fatalf("files %+v", p.Files)
	}
	own := fileOf(p, NetplanFile)
	if own == nil || own.Mode != 0o600 {
		t.Fatalf("own file %+v", own)
	}
	golden(t, "netplan/90-kvmnet.yaml", own.Body)
	neut := fileOf(p, "/etc/netplan/50-cloud-init.yaml")
	if neut == nil || neut.Neutralises != "ens3,lan0" || neut.Mode != 0 {
		t.Fatalf("neutralised %+v", neut)
	}
	golden(t, "netplan/50-cloud-init.neutralised.yaml", neut.Body)
	if !slices.Contains(p.Notes, "netplan definition eth7 in /lib/netplan/00-keep.yaml names an interface this guest does not have; it is outside /etc/netplan and left alone") {
		t.Fatalf("notes %q", p.Notes)
	}
	want := []string{"stack=netplan", "netplan_file=/etc/netplan/90-kvmnet.yaml", "netplan_id=kvmnet-ens2", "netplan_neutralised=/etc/netplan/50-cloud-init.yaml:ens3,lan0"}
	if !slices.Equal(p.Evidence, want) {
		t.Fatalf("evidence %q", p.Evidence)
	}
	var cmds []string
	for _, c := range p.Apply {
		cmds = append(cmds, c.String())
	}
	if strings.Join(cmds, ";") != "netplan generate;netplan apply" {
		t.Fatalf("apply %q", cmds)
	}
}

func TestNetplanSecondNICKeepsFirst(t *testing.T) {
	all := []NIC{{Name: "ens2", MAC: macA}, {Name: "ens3", MAC: macB}}
	root := build(t, map[string]string{"etc/netplan/": ""})
	b := NewNetplan(root)
	p1, err := b.Plan(Target{NIC: all[0], IPv6: "disabled", All: all})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b.Plan(Target{NIC: all[1], All: all, Pending: map[string][]byte{NetplanFile: p1.Files[0].Body}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "netplan/90-kvmnet.two-nics.yaml", p2.Files[0].Body)
}

func TestNetplanApplyShowsGenerateError(t *testing.T) {
	b := NewNetplan(t.TempDir())
	p := &Plan{Apply: []Command{{Argv: []string{"netplan", "generate"}}, {Argv: []string{"netplan", "apply"}}}}
	r := &fakeRunner{fail: map[string]string{"netplan generate": "/etc/netplan/50-x.yaml:3:5: Error in network definition: unknown key 'dhcp5'"}}
	_, err := b.Apply(context.Background(), r, p)
	if err == nil || !strings.Contains(err.Error(), "unknown key 'dhcp5'") || !strings.Contains(err.Error(), "netplan generate") {
		t.Fatalf("err = %v", err)
	}
	if len(r.ran) != 1 {
		t.Fatalf("ran %q after generate failed", r.ran)
	}
}

// rootRunner runs real commands, giving netplan the temporary root.
type rootRunner struct{ root string }

func (r rootRunner) Run(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) >= 2 && argv[0] == "netplan" && argv[1] == "generate" {
		argv = append(slices.Clone(argv), "--root-dir", r.root)
	}
	if argv[0] == "netplan" && argv[1] == "apply" {
		return nil, nil // applying needs systemd as PID 1 (the lab guest covers it)
	}
	return realRun(ctx, argv...)
}

// TestNetplanGenerateReal feeds the rendered and neutralised files to the real `netplan generate`
// in a temporary root and reads the networkd files it renders.
func TestNetplanGenerateReal(t *testing.T) {
	testenv.Require(t, "netplan")
	root := build(t, map[string]string{"etc/netplan/50-cloud-init.yaml": cloudInitStale})
	if err := os.Chmod(filepath.Join(root, "etc/netplan/50-cloud-init.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := NewNetplan(root)
	r := rootRunner{root: root}
	// Before: netplan renders the stale name.
	if _, err := b.Apply(context.Background(), r, &Plan{Apply: []Command{{Argv: []string{"netplan", "generate"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "run/systemd/network/10-netplan-ens3.network")); err != nil {
		t.Fatalf("netplan did not render the stale definition: %v", err)
	}
	p, err := b.Plan(Target{NIC: ens2[0], IPv6: "disabled", All: ens2})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o600
		}
		body := append([]byte("# managed by kvmnet — do not edit; see /etc/kvmnet/agent.yaml\n"), f.Body...)
		if err := os.WriteFile(filepath.Join(root, f.Path), body, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(root, "run")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(context.Background(), r, p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "run/systemd/network/10-netplan-kvmnet-ens2.network"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PermanentMACAddress=" + macA, "DHCP=ipv4", "LinkLocalAddressing=no", "IPv6AcceptRA=no"} {
		if !strings.Contains(string(got), want) {
			t.Fatalf("networkd file lacks %q:\n%s", want, got)
		}
	}
	left, _ := filepath.Glob(filepath.Join(root, "run/systemd/network/*"))
	if len(left) != 1 {
		t.Fatalf("netplan rendered %v, want kvmnet's file alone", left)
	}

	// A broken user file: generate's own message comes back verbatim.
	if err := os.WriteFile(filepath.Join(root, "etc/netplan/60-bad.yaml"), []byte("network:\n  version: 2\n  ethernets:\n    ens2:\n      dhcp5: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = b.Apply(context.Background(), r, p)
	if err == nil || !strings.Contains(err.Error(), "dhcp5") || !strings.Contains(err.Error(), "60-bad.yaml") {
		t.Fatalf("generate error not verbatim: %v", err)
	}
}

func TestNetworkdPlanGolden(t *testing.T) {
	root := build(t, map[string]string{
		"run/systemd/netif/state":                      networkdState,
		"etc/systemd/network/20-wired.network":         "[Match]\nName=ens3\n\n[Network]\nDHCP=yes\n# static fallback\nAddress=10.0.0.5/24\n",
		"etc/systemd/network/30-any.network":           "[Match]\nType=ether\n[Network]\nDHCP=yes\n",
		"etc/systemd/network/40-this.network":          "[Match]\nMACAddress=52:54:00:AA:00:01\n[Network]\nDHCP=yes\n",
		"usr/lib/systemd/network/80-container.network": "[Match]\nName=host0\n",
	})
	b := NewNetworkd(root)
	p, err := b.Plan(Target{NIC: ens2[0], IPv6: "ignore", All: ens2})
	if err != nil {
		t.Fatal(err)
	}
	own := fileOf(p, "/etc/systemd/network/10-kvmnet-525400aa0001.network")
	if own == nil {
		t.Fatalf("files %+v", p.Files)
	}
	golden(t, "networkd/10-kvmnet-525400aa0001.network", own.Body)
	neut := fileOf(p, "/etc/systemd/network/20-wired.network")
	if neut == nil || len(p.Files) != 2 {
		t.Fatalf("files %+v", p.Files)
	}
	golden(t, "networkd/20-wired.neutralised.network", neut.Body)
	if m := parseMatch(neut.Body); !slices.Equal(m["Name"], []string{"ens3"}) {
		t.Fatalf("neutralised [Match] %v", m)
	}
	r := &fakeRunner{}
	if _, err := b.Apply(context.Background(), r, p); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rollback(context.Background(), r, p, false); err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.ran, ";") != "networkctl reload;networkctl reconfigure ens2;networkctl reload;networkctl reconfigure ens2" {
		t.Fatalf("ran %q", r.ran)
	}
}

func TestIfupdownPlanGolden(t *testing.T) {
	debianStale := "# The loopback network interface\nauto lo\niface lo inet loopback\n\n# The primary network interface\nallow-hotplug eth0 ens9\niface eth0 inet dhcp\n  hostname old\niface eth0 inet6 auto\n\nauto ens2\niface ens2 inet static\n  address 10.9.9.9/24\n"
	root := build(t, map[string]string{"etc/network/interfaces": debianStale, "etc/network/interfaces.d/": ""})
	b := NewIfupdown(root)
	p, err := b.Plan(Target{NIC: ens2[0], All: ens2})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "ifupdown/kvmnet-ens2", fileOf(p, "/etc/network/interfaces.d/kvmnet-ens2").Body)
	neut := fileOf(p, "/etc/network/interfaces")
	if neut == nil {
		t.Fatalf("files %+v", p.Files)
	}
	golden(t, "ifupdown/interfaces.neutralised", neut.Body)
	// The managed copy, read back, has only lo and sources kvmnet's directory.
	root2 := build(t, map[string]string{"etc/network/interfaces": string(neut.Body), "etc/network/interfaces.d/kvmnet-ens2": string(fileOf(p, "/etc/network/interfaces.d/kvmnet-ens2").Body)})
	cfg, err := readIfupdown(root2)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.stanzas) != 2 || cfg.stanzas["ens2"].file != "/etc/network/interfaces.d/kvmnet-ens2" || !cfg.stanzas["ens2"].auto || cfg.stanzas["eth0"] != nil {
		t.Fatalf("stanzas after neutralising: %+v", cfg.stanzas)
	}
	r := &fakeRunner{out: map[string]string{"journalctl --no-pager -o cat -n 20 -u ifup@ens2.service": "DHCPACK of 192.168.122.50 from 192.168.122.1\nbound to 192.168.122.50 -- renewal in 1663 seconds."}}
	ev, err := b.Apply(context.Background(), r, p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(ev, " "), "DHCPACK of 192.168.122.50") {
		t.Fatalf("DHCP client output missing from evidence: %q", ev)
	}
	if _, err := b.Rollback(context.Background(), r, p, true); err != nil {
		t.Fatal(err)
	}
	if r.ran[len(r.ran)-1] != "systemctl stop ifup@ens2.service" {
		t.Fatalf("ran %q", r.ran)
	}
}

func TestIfupdownSourcedAlready(t *testing.T) {
	root := build(t, map[string]string{"etc/network/interfaces": "auto lo\niface lo inet loopback\nsource-directory interfaces.d\n", "etc/network/interfaces.d/": ""})
	p, err := NewIfupdown(root).Plan(Target{NIC: ens2[0], All: ens2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 1 {
		t.Fatalf("interfaces changed although it sources interfaces.d: %+v", p.Files)
	}
}

func TestChoose(t *testing.T) {
	backends := func(root string) []Backend {
		return []Backend{NewNetplan(root), NewNetworkd(root), NewIfupdown(root)}
	}
	tests := []struct {
		name     string
		fx       map[string]string
		nm       NMProbe
		disabled []string
		stack    string
		err      error
		errHas   []string
	}{
		{name: "NetworkManager manages it", nm: fakeNM{managed: map[string]bool{"ens2": true}}, stack: NameNetworkManager},
		{name: "netplan installed, stale name", fx: map[string]string{"etc/netplan/50-cloud-init.yaml": cloudInitStale, "run/systemd/netif/state": networkdState}, stack: NameNetplan},
		{name: "networkd without netplan", fx: map[string]string{"run/systemd/netif/state": networkdState, "etc/systemd/network/20-wired.network": "[Match]\nName=ens3\n"}, stack: NameNetworkd},
		{name: "ifupdown only", fx: map[string]string{"etc/network/interfaces": "allow-hotplug eth0\niface eth0 inet dhcp\n"}, nm: fakeNM{err: errors.New("system bus not found")}, stack: NameIfupdown},
		// Debian 12's ifupdown image: systemd's tmpfiles make /run/systemd/netif/links with networkd
		// stopped (the lab's first ifupdown run chose networkd here: networkctl reload failed).
		{name: "ifupdown with networkd's empty runtime dirs", fx: map[string]string{"etc/network/interfaces": "allow-hotplug ens3\niface ens3 inet dhcp\n", "run/systemd/netif/links/": "", "lib/systemd/systemd-networkd": ""}, stack: NameIfupdown},
		{name: "nothing installed: NetworkManager path as before", fx: map[string]string{"etc/": ""}, stack: NameNetworkManager},
		{
			name: "NetworkManager and ifupdown both claim it",
			fx:   map[string]string{"etc/network/interfaces": "auto ens2\niface ens2 inet dhcp\n"},
			nm:   fakeNM{managed: map[string]bool{"ens2": true}},
			err:  ErrConflict, errHas: []string{"networkmanager", "ifupdown (/etc/network/interfaces: stanza iface ens2 inet dhcp)"},
		},
		{
			name: "netplan and networkd both claim it",
			fx: map[string]string{
				"run/systemd/netif/state":             networkdState,
				"etc/netplan/10-a.yaml":               "network:\n  ethernets:\n    ens2: {dhcp4: true}\n",
				"etc/systemd/network/05-mine.network": "[Match]\nName=ens*\n[Network]\nDHCP=yes\n",
			},
			err: ErrConflict, errHas: []string{"netplan (/etc/netplan/10-a.yaml: id ens2)", "networkd (/etc/systemd/network/05-mine.network"},
		},
		{name: "netplan opted out", fx: map[string]string{"etc/netplan/50-cloud-init.yaml": cloudInitStale}, disabled: []string{NameNetplan}, err: ErrOptedOut, errHas: []string{"manage_netplan is false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := build(t, tc.fx)
			d, err := New(Options{Root: root, NM: tc.nm})
			if err != nil {
				t.Fatal(err)
			}
			sel := NewSelector(d, NewChooser(backends(root), tc.disabled))
			c, err := sel.Choose(context.Background(), ens2, macA)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				for _, h := range tc.errHas {
					if !strings.Contains(err.Error(), h) {
						t.Fatalf("err %q lacks %q", err, h)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Stack != tc.stack || (c.Backend == nil) != (tc.stack == NameNetworkManager) {
				t.Fatalf("chose %s (%v), want %s; evidence %s", c.Stack, c.Backend, tc.stack, c.Evidence)
			}
			if !strings.Contains(c.Evidence, "stack="+tc.stack) {
				t.Fatalf("evidence %s", c.Evidence)
			}
		})
	}
}

func realRun(ctx context.Context, argv ...string) ([]byte, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}
