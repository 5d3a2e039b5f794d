package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/netstack"
	"github.com/kvmnet/kvmnet/agent/nm"
)

// probeNM tells agent/netstack's Detector that NetworkManager manages ens2.
type probeNM struct{}

func (probeNM) ManagesDevice(_ context.Context, ifname string) (bool, string, error) {
	return ifname == "ens2", "nm_device_state=disconnected", nil
}

// newNMStackEnv is a guest whose NIC ens2 (mac1) NetworkManager manages, with the real
// agent/netstack Selector over the NetworkManager backend (on a fake client) and the file-based
// backends; the Applier has no Options.NM of its own, so every NetworkManager call it makes goes
// through the backend Stacks chose.
func newNMStackEnv(t *testing.T, fx map[string]string) (*Applier, *fakeNM, string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc/netplan", "etc/systemd/network", "etc/network/interfaces.d", "etc/sysctl.d"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
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
	det, err := netstack.New(netstack.Options{Root: root, NM: probeNM{}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNM{state: nm.State{Status: nm.Status{Running: true, Version: "1.42.4"}, Devices: []nm.Device{
		{Path: "/d/1", Interface: "ens2", MAC: mac1, Type: gonm.NmDeviceTypeEthernet, State: gonm.NmDeviceStateDisconnected, Managed: true}}}}
	backends := []netstack.Backend{netstack.NewNetworkManager(f, nil), netstack.NewNetplan(root), netstack.NewNetworkd(root), netstack.NewIfupdown(root)}
	cfg := config.Default()
	cfg.Root = root
	a := New(Options{Config: cfg, Files: store, Sysctl: ProcSysctl{Root: root}, NICs: fixedNICs{{Name: "ens2", MAC: mac1}},
		Stacks: netstack.NewSelector(det, netstack.NewChooser(backends, cfg.DisabledStacks())), Runner: &cmdLog{fail: map[string]string{}}})
	t.Cleanup(func() { _ = a.Close() })
	return a, f, root
}

// TestNMThroughStacksBackend: a NIC NetworkManager manages is fixed through the NetworkManager
// backend agent/netstack chose: checkpoint before the steps, profile, activation and lease wait,
// re-arm after, destroy on Confirm; a Rollback rolls the checkpoint back.
func TestNMThroughStacksBackend(t *testing.T) {
	ctx := context.Background()
	a, f, _ := newNMStackEnv(t, nil)
	dry, err := a.Apply(ctx, fixReq(true))
	if err != nil || len(dry.Changes) != 2 || f.called() != "" {
		t.Fatalf("dry run: %v err %v, NetworkManager calls %q", dry.GetChanges(), err, f.called())
	}
	resp, err := a.Apply(ctx, fixReq(false))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Changes[1].Summary, ": got 10.77.0.100/24 in ") {
		t.Fatalf("activation summary %q", resp.Changes[1].Summary)
	}
	if err := a.Confirm(ctx, resp.CheckpointId); err != nil {
		t.Fatal(err)
	}
	if got := f.called(); got != "checkpoint:40s,add:kvm-dhcp-ens2,activate:/c/kvm-dhcp-ens2,wait,adjust:35s,destroy" {
		t.Fatalf("NetworkManager calls %q", got)
	}

	a, f, _ = newNMStackEnv(t, nil)
	resp, err = a.Apply(ctx, fixReq(false))
	if err != nil {
		t.Fatal(err)
	}
	restored, err := a.Rollback(ctx, resp.CheckpointId)
	if err != nil || !strings.Contains(strings.Join(restored, ";"), "NetworkManager checkpoint rolled back (devices 1=0)") {
		t.Fatalf("rollback: %v %v", restored, err)
	}
	if got := f.called(); !strings.HasSuffix(got, "adjust:35s,rollback") {
		t.Fatalf("NetworkManager calls %q", got)
	}
}

// TestNMAndNetplanClaimWritesNothing: NetworkManager manages ens2 and a netplan file (networkd
// renderer) defines it too: the fix is refused naming both, with no NetworkManager call (not even a
// checkpoint) and no file written.
func TestNMAndNetplanClaimWritesNothing(t *testing.T) {
	a, f, root := newNMStackEnv(t, map[string]string{"etc/netplan/50-cloud-init.yaml": "network:\n  ethernets:\n    ens2: {dhcp4: true}\n"})
	_, err := a.Apply(context.Background(), fixReq(false))
	if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "networkmanager (NetworkManager manages ens2)") ||
		!strings.Contains(err.Error(), "netplan (/etc/netplan/50-cloud-init.yaml: id ens2)") {
		t.Fatalf("err = %v", err)
	}
	if f.called() != "" {
		t.Fatalf("NetworkManager calls %q", f.called())
	}
	if _, err := os.Stat(filepath.Join(root, "etc/netplan/90-kvmnet.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a conflict wrote 90-kvmnet.yaml (%v)", err)
	}
}
