package libvirt

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/libvirt/libvirtxml"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// openTest opens libvirt's built-in test driver: no daemon, one active NAT network "default" and one
// running domain "test". Each open gets a fresh private state.
func openTest(t *testing.T) *Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, "test:///default", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestTestDriverRead(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var snap snapshot.Snapshot
	if err := s.Fill(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	if snap.URI != "test:///default" || snap.Session {
		t.Fatalf("URI=%q Session=%v", snap.URI, snap.Session)
	}
	if len(snap.Errors) != 0 {
		t.Fatalf("unexpected errors: %v", snap.Errors)
	}
	if len(snap.Networks) != 1 {
		t.Fatalf("networks: %+v", snap.Networks)
	}
	n := snap.Networks[0]
	if n.Name != "default" || !n.Active || !n.Persistent || n.Forward != snapshot.ForwardNAT || n.Bridge != "virbr0" ||
		n.Subnet() != "192.168.122.0/24" {
		t.Fatalf("network: %+v", n)
	}
	// The test driver cannot report leases: that is "no lease data", not an error.
	if n.LeasesSupported || n.Leases != nil {
		t.Fatalf("LeasesSupported=%v Leases=%v, want false/nil", n.LeasesSupported, n.Leases)
	}
	if len(snap.Domains) != 1 {
		t.Fatalf("domains: %+v", snap.Domains)
	}
	d := snap.Domains[0]
	if d.Name != "test" || d.State != "running" || !d.Persistent || d.ID != 1 || len(d.NICs) != 1 ||
		d.NICs[0].Network != "default" || d.NICs[0].MAC == "" {
		t.Fatalf("domain: %+v", d)
	}
}

func TestTestDriverMutations(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	isolated := strings.Replace(strings.Replace(strings.Replace(libvirtxml.DefaultNetworkXML, "default", "lab", 1),
		"virbr0", "virbr7", 1), "192.168.122.", "10.77.0.", -1)
	name, err := s.DefineNetwork(ctx, isolated)
	if err != nil || name != "lab" {
		t.Fatalf("DefineNetwork = %q, %v", name, err)
	}
	n, err := s.Network(ctx, "lab")
	if err != nil || n.Active || n.Autostart || !n.Persistent {
		t.Fatalf("after define: %+v %v", n, err)
	}
	if err := s.StartNetwork(ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	if err := s.StartNetwork(ctx, "lab"); err != nil {
		t.Fatalf("second start must be a no-op: %v", err)
	}
	if err := s.SetNetworkAutostart(ctx, "lab", true); err != nil {
		t.Fatal(err)
	}
	if err := s.RestartNetwork(ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	n, err = s.Network(ctx, "lab")
	if err != nil || !n.Active || !n.Autostart || n.Subnet() != "10.77.0.0/24" {
		t.Fatalf("after start/autostart/restart: %+v %v", n, err)
	}
	x, err := s.NetworkXML(ctx, "lab", false) // the test driver rejects the INACTIVE flag
	if err != nil || !strings.Contains(x, "virbr7") {
		t.Fatalf("NetworkXML: %v %s", err, x)
	}
}

func TestNotFoundAndBadXML(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		run      func() error
		notFound bool
		want     string
	}{
		{"network", func() error { _, err := s.Network(ctx, "nope"); return err }, true, `network "nope"`},
		{"domain", func() error { _, err := s.Domain(ctx, "nope"); return err }, true, `domain "nope"`},
		{"start", func() error { return s.StartNetwork(ctx, "nope") }, true, `start network "nope"`},
		{"autostart", func() error { return s.SetNetworkAutostart(ctx, "nope", true) }, true, `set autostart of network "nope"`},
		{"attach", func() error { return s.AttachDeviceLive(ctx, "nope", "<channel/>", false) }, true, `attach device to domain "nope"`},
		{"define garbage network", func() error { _, err := s.DefineNetwork(ctx, "<x"); return err }, false, "define network"},
		{"define garbage domain", func() error { return s.DefineDomainXML(ctx, "<domain/>") }, false, "define domain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if errors.Is(err, ErrNotFound) != tc.notFound {
				t.Fatalf("errors.Is(err, ErrNotFound) = %v for %v", !tc.notFound, err)
			}
			if strings.Contains(err.Error(), "virError(") {
				t.Fatalf("binding struct dump leaked into the message: %v", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Open(ctx, "qemu:///system?socket=/nonexistent/kvmnet/libvirt-sock", nil)
	var ce *ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "is libvirtd running?") ||
		!strings.Contains(err.Error(), "/nonexistent/kvmnet/libvirt-sock") {
		t.Fatalf("err = %v", err)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := Open(done, "test:///default", nil); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled open: %v", err)
	}
	s := openTest(t)
	if _, err := s.Networks(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
}
