package diagnose

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

// goldenSnapshot is a host with UFW blocking routed traffic and three guests: vm1 healthy but hit by
// the host cause, vm2 with a profile hard-coded to eth0 (multi-NIC), vm3 without an agent channel.
func goldenSnapshot() snapshot.Snapshot {
	s := multiNIC()
	s.Firewall.UFW = snapshot.UFW{Enabled: true, DefaultRouted: "deny"}
	s.Firewall.ForwardPolicy = "DROP"
	s.Firewall.Flows[0] = snapshot.Flow{Network: "default", Kind: "egress", Verdict: snapshot.VerdictDrop, Chain: "FORWARD",
		Rule: "policy DROP of FORWARD", Description: "new tcp 192.168.122.0/24 -> uplink eth0 port 80",
		Trace: []string{"FORWARD", "ufw-before-forward", "ufw-user-forward", "policy DROP"}}
	s.Guests[0].Checks[3] = result("egress-tcp-v4", tcp, v4, "deb.debian.org:80", false, "i/o timeout")
	s.Guests[0].Checks[3].Address = "151.101.2.132:80"

	const mac3, mac4 = "52:54:00:00:00:03", "52:54:00:00:00:04"
	s.Domains = append(s.Domains,
		domain("vm2", netNIC(mac3, "default", "virbr0", "vnet2")),
		snapshot.Domain{Name: "vm3", State: "running", NICs: []snapshot.DomainNIC{netNIC(mac4, "default", "virbr0", "vnet3")}},
		snapshot.Domain{Name: "old", State: "shut off", NICs: []snapshot.DomainNIC{{MAC: "52:54:00:00:00:05", Type: "network", Network: "default"}}},
	)
	s.Domains[1].ChannelAccess = &snapshot.SocketAccess{Path: "/var/lib/libvirt/qemu/channel/target/domain-2-vm2/org.kvmnet.agent.0",
		Owner: "libvirt-qemu", Group: "kvm", Mode: "srwxrwxr-x", Groups: map[string][]string{"kvm": {"alice"}}}
	s.Host.Bridges[0].Ports = append(s.Host.Bridges[0].Ports, "vnet2", "vnet3")
	s.Networks[0].Leases = append(s.Networks[0].Leases, snapshot.Lease{MAC: mac4, IP: "192.168.122.60", Prefix: 24, Family: 4, Expiry: t0})
	st := guestState([]*kvmnetv1.Interface{iface("enp1s0", mac3, nil, false)}, "192.168.122.1",
		&kvmnetv1.Profile{Id: "Wired connection 1", Uuid: "w1", Type: "802-3-ethernet", InterfaceName: "eth0", Ipv4Method: "auto",
			Autoconnect: true, BoundToMissingInterface: true})
	st.Hostname = "vm2"
	s.Guests = append(s.Guests,
		snapshot.Guest{Domain: "vm2", Transport: snapshot.TransportVirtioSerial, Address: "serial:/var/lib/libvirt/qemu/channel/target/domain-2-vm2/org.kvmnet.agent.0",
			Reachable: true, State: st},
		snapshot.Guest{Domain: "vm3", Transport: snapshot.TransportNone},
		snapshot.Guest{Domain: "old", Transport: snapshot.TransportNone},
	)
	return s
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

func TestGoldenJSON(t *testing.T) {
	r := Diagnose(goldenSnapshot())
	// The same encoding as controller/output's JSON (no HTML escaping): controller/output renders its
	// golden tables from this file.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	golden(t, "report.json", b)

	// The contract, checked structurally so a golden update cannot silently drop a field.
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	host := m["host"].(map[string]any)
	requireKeys(t, "host", host, "findings")
	for _, f := range host["findings"].([]any) {
		requireKeys(t, "host finding", f.(map[string]any), "code", "severity", "subject", "summary", "fix", "evidence")
	}
	for _, n := range m["networks"].([]any) {
		requireKeys(t, "network", n.(map[string]any), "name", "active", "autostart", "forward", "bridge", "subnet")
	}
	for _, g := range m["guests"].([]any) {
		gm := g.(map[string]any)
		requireKeys(t, "guest", gm, "name", "state", "healthy", "agent", "nics", "findings")
		requireKeys(t, "agent", gm["agent"].(map[string]any), "transport", "reachable")
		for _, n := range gm["nics"].([]any) {
			nm := n.(map[string]any)
			requireKeys(t, "nic", nm, "mac", "network", "bridge", "guest_ifname", "guest_ipv4", "lease_ipv4")
			if _, ok := nm["guest_ipv4"].([]any); !ok {
				t.Errorf("guest_ipv4 must be an array, got %T", nm["guest_ipv4"])
			}
		}
		for _, f := range gm["findings"].([]any) {
			requireKeys(t, "guest finding", f.(map[string]any), "code", "severity", "subject", "summary", "fix")
		}
	}
}

func requireKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks key %q: %v", what, k, m)
		}
	}
}
