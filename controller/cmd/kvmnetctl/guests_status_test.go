package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/serialemu"
)

// dgAgent answers GetState from a fixed state and passes every check.
type dgAgent struct {
	kvmnetv1.UnimplementedAgentServer
	st *kvmnetv1.GuestState
}

func (a dgAgent) GetState(context.Context, *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	return a.st, nil
}

func (a dgAgent) RunChecks(_ context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	var out []*kvmnetv1.CheckResult
	for _, c := range req.GetChecks() {
		out = append(out, &kvmnetv1.CheckResult{Check: c, Ok: true, LatencyUs: 200})
	}
	return &kvmnetv1.RunChecksResponse{Results: out}, nil
}

// emuChannel emulates a domain's org.kvmnet.agent.0 virtio-serial channel at dir/name.sock; with a
// state, a real agent server (serial listener + resync handshake) answers behind it.
func emuChannel(t *testing.T, dir, name string, st *kvmnetv1.GuestState) string {
	t.Helper()
	e, err := serialemu.New(filepath.Join(dir, name+".sock"), serialemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if st != nil {
		l := transport.NewSerialListener(e, transport.SerialOptions{})
		s := server.New(dgAgent{st: st}, server.Options{})
		go func() { _ = s.Serve(l) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Stop(ctx)
			_ = l.Close()
		})
	}
	return e.HostPath()
}

func dgState(mac string, v4 []string, profiles ...*kvmnetv1.Profile) *kvmnetv1.GuestState {
	st := &kvmnetv1.GuestState{
		Hostname:       "g",
		Interfaces:     []*kvmnetv1.Interface{{Name: "enp1s0", Mac: mac, OperState: "up", Carrier: true, Ipv4: v4, DefaultRouteV4: len(v4) > 0}},
		Dns:            &kvmnetv1.DNSState{Servers: []string{"192.168.122.1"}},
		NetworkManager: &kvmnetv1.NetworkManagerState{Running: true, Profiles: profiles},
		Ipv6:           &kvmnetv1.IPv6State{},
		QemuGuestAgent: &kvmnetv1.QemuGuestAgentState{Installed: true, Running: true, ChannelPresent: true},
		Config:         &kvmnetv1.AgentConfig{AllowApply: true},
	}
	if len(v4) > 0 {
		st.Routes = []*kvmnetv1.Route{{Family: 4, Destination: "default", Gateway: "192.168.122.1", Interface: "enp1s0"}}
	}
	return st
}

const nodeNetwork = `  <network>
    <name>default</name>
    <forward mode='nat'/>
    <bridge name='virbr0'/>
    <ip address='192.168.122.1' netmask='255.255.255.0'>
      <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
    </ip>
  </network>
`

func nodeDomain(name, mac, sock string) string {
	ch := ""
	if sock != "" {
		ch = fmt.Sprintf(`      <channel type='unix'><source mode='bind' path='%s'/><target type='virtio' name='org.kvmnet.agent.0'/></channel>
`, sock)
	}
	return fmt.Sprintf(`  <domain type='test'>
    <name>%s</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices>
      <interface type='network'><mac address='%s'/><source network='default'/><model type='virtio'/></interface>
%s      <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    </devices>
  </domain>
`, name, mac, ch)
}

// testNode writes a libvirt test-driver node file: the default NAT network and four running
// domains — vm1 healthy behind a real agent, vm2 with a NetworkManager profile hard-coded to eth0,
// vm3 whose channel has nothing behind it (the agent never answers), vm4 without a channel.
func testNode(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	vm1 := emuChannel(t, dir, "vm1", dgState("52:54:00:00:00:01", []string{"192.168.122.50/24"},
		&kvmnetv1.Profile{Id: "kvm-dhcp-enp1s0", Type: "802-3-ethernet", InterfaceName: "enp1s0", Ipv4Method: "auto", Active: true}))
	vm2 := emuChannel(t, dir, "vm2", dgState("52:54:00:00:00:02", nil,
		&kvmnetv1.Profile{Id: "Wired connection 1", Type: "802-3-ethernet", InterfaceName: "eth0", Ipv4Method: "auto", BoundToMissingInterface: true}))
	vm3 := emuChannel(t, dir, "vm3", nil)
	xml := "<node>\n" + nodeNetwork + nodeDomain("vm1", "52:54:00:00:00:01", vm1) + nodeDomain("vm2", "52:54:00:00:00:02", vm2) +
		nodeDomain("vm3", "52:54:00:00:00:03", vm3) + nodeDomain("vm4", "52:54:00:00:00:04", "") + "</node>\n"
	path := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(path, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	return "test://" + path
}

// contract is the JSON contract of guests status / host check (README), as a client reads it.
type contract struct {
	Host struct {
		Findings []finding `json:"findings"`
	} `json:"host"`
	Networks []struct {
		Name      string `json:"name"`
		Active    bool   `json:"active"`
		Autostart bool   `json:"autostart"`
		Forward   string `json:"forward"`
		Bridge    string `json:"bridge"`
		Subnet    string `json:"subnet"`
	} `json:"networks"`
	Guests []struct {
		Name    string `json:"name"`
		State   string `json:"state"`
		Healthy bool   `json:"healthy"`
		Health  string `json:"health"`
		Agent   struct {
			Transport string `json:"transport"`
			Reachable bool   `json:"reachable"`
		} `json:"agent"`
		NICs []struct {
			MAC         string   `json:"mac"`
			Network     string   `json:"network"`
			Bridge      string   `json:"bridge"`
			GuestIfname string   `json:"guest_ifname"`
			GuestIPv4   []string `json:"guest_ipv4"`
			LeaseIPv4   *string  `json:"lease_ipv4"`
			Checks      string   `json:"checks"`
		} `json:"nics"`
		Findings []finding `json:"findings"`
	} `json:"guests"`
}

type finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Subject  string `json:"subject"`
	Summary  string `json:"summary"`
	Fix      string `json:"fix"`
}

func findingCodes(fs []finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return strings.Join(out, ",")
}

// TestGuestsStatusCLI runs `kvmnetctl guests status` against libvirt's test driver (real
// libvirt.org/go/libvirt, real domain XML with channels) and real agents behind emulated
// virtio-serial channels (resync handshake included).
func TestGuestsStatusCLI(t *testing.T) {
	uri := testNode(t)
	start := time.Now()
	out, errs, code := runCLI(t, nil, "guests", "status", "-c", uri, "--timeout", "6s", "-o", "json")
	elapsed := time.Since(start)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (vm2 is broken); stderr: %s\n%s", code, errs, out)
	}
	if !strings.Contains(errs, "1 guest with error-level findings") {
		t.Errorf("stderr: %q", errs)
	}
	var c contract
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if len(c.Networks) != 1 || c.Networks[0].Name != "default" || c.Networks[0].Subnet != "192.168.122.0/24" || c.Networks[0].Forward != "nat" {
		t.Errorf("networks: %+v", c.Networks)
	}
	want := []struct {
		name, transport string
		reachable       bool
		ifname, checks  string
		codes           string
		healthy         bool
	}{
		{"vm1", "virtio-serial", true, "enp1s0", "gw=ok dns=ok dnsmasq=ok egress=ok", "", true},
		{"vm2", "virtio-serial", true, "enp1s0", "-", "guest_no_ipv4,guest_profile_wrong_interface", false},
		{"vm3", "virtio-serial", false, "", "-", "guest_agent_unreachable", true},
		{"vm4", "none", false, "", "-", "guest_agent_missing_channel", true},
	}
	if len(c.Guests) != len(want) {
		t.Fatalf("guests: %d, want %d\n%s", len(c.Guests), len(want), out)
	}
	for i, w := range want {
		g := c.Guests[i]
		if g.Name != w.name || g.State != "running" || g.Agent.Transport != w.transport || g.Agent.Reachable != w.reachable ||
			len(g.NICs) != 1 || g.NICs[0].GuestIfname != w.ifname || g.NICs[0].Checks != w.checks || findingCodes(g.Findings) != w.codes ||
			g.NICs[0].Network != "default" || g.NICs[0].GuestIPv4 == nil || g.NICs[0].LeaseIPv4 == nil {
			t.Errorf("guest %d: %+v\nwant %+v", i, g, w)
		}
		if w.name != "vm2" && g.Healthy != w.healthy {
			t.Errorf("%s healthy=%v", g.Name, g.Healthy)
		}
	}
	// Nothing from inside vm3 (no agent behind its channel) or vm4 (no channel): not "healthy".
	if h := []string{c.Guests[0].Health, c.Guests[1].Health, c.Guests[2].Health, c.Guests[3].Health}; h[0] != "healthy" ||
		h[1] != "unhealthy" || h[2] != "unknown" || h[3] != "unknown" {
		t.Errorf("health %v, want healthy unhealthy unknown unknown", h)
	}
	if !strings.Contains(findingCodes(c.Guests[2].Findings), "guest_agent_unreachable") {
		t.Errorf("vm3 findings %+v", c.Guests[2].Findings)
	}
	for _, f := range c.Guests[2].Findings {
		if f.Code == "guest_agent_unreachable" && !strings.Contains(f.Fix, "install and start kvmnet-agent") {
			t.Errorf("vm3 (nothing takes the channel) should be told to install the agent: %q", f.Fix)
		}
	}
	t.Logf("status of 4 guests (one never answers) took %s with --timeout 6s", elapsed)

	// One guest, table output, healthy: exit 0, a row per NIC and the summary line, no colour.
	out, errs, code = runCLI(t, nil, "guests", "status", "vm1", "-c", uri, "--timeout", "6s")
	if code != 0 {
		t.Fatalf("status vm1: exit %d: %s\n%s", code, errs, out)
	}
	for _, s := range []string{"DOMAIN", "vm1", "52:54:00:00:00:01", "default", "enp1s0", "192.168.122.50/24",
		"1 guest, 1 NIC: 1 healthy, 0 unhealthy"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "\x1b[") || strings.Contains(out, "vm2") {
		t.Errorf("colour on a non-terminal, or an unselected guest:\n%s", out)
	}
	// -o wide adds the bridge, the agent's transport and the checks.
	out, _, _ = runCLI(t, nil, "guests", "status", "vm1", "-c", uri, "--timeout", "6s", "-o", "wide")
	for _, s := range []string{"default(virbr0)", "virtio-serial/ok", "gw=ok dns=ok dnsmasq=ok egress=ok"} {
		if !strings.Contains(out, s) {
			t.Errorf("wide table lacks %q:\n%s", s, out)
		}
	}

	// YAML has the same keys.
	out, _, _ = runCLI(t, nil, "guests", "status", "vm2", "-c", uri, "--no-checks", "-o", "yaml")
	for _, s := range []string{"guest_ifname: enp1s0", "code: guest_profile_wrong_interface", "healthy: false"} {
		if !strings.Contains(out, s) {
			t.Errorf("yaml lacks %q:\n%s", s, out)
		}
	}
}

func TestGuestsStatusAndHostCheckErrors(t *testing.T) {
	missing := "test://" + filepath.Join(t.TempDir(), "none.xml")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown domain", []string{"guests", "status", "ghost", "-c", "test:///default"}, 2, "no such domain: ghost"},
		{"libvirt unreachable (status)", []string{"guests", "status", "-c", missing}, 2, "none.xml"},
		{"libvirt unreachable (check)", []string{"host", "check", "-c", missing}, 2, "none.xml"},
		{"host check takes no arguments", []string{"host", "check", "x"}, 2, "unknown command"},
		{"bad output", []string{"host", "check", "-o", "xml"}, 2, "xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := runCLI(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Errorf("exit %d stderr %q, want %d containing %q", code, errs, tc.code, tc.msg)
			}
		})
	}
}

func TestHostCheckCLI(t *testing.T) {
	uri := testNode(t)
	out, errs, code := runCLI(t, nil, "host", "check", "-c", uri, "--timeout", "6s", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d (only warnings expected): %s\n%s", code, errs, out)
	}
	var c contract
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	// The test driver is not this host: the firewall is not read, and says so; the network is
	// judged from libvirt alone.
	if got := findingCodes(c.Host.Findings); got != "network_autostart_off,firewall_unreadable" {
		t.Errorf("host findings: %s", got)
	}
	for _, f := range c.Host.Findings {
		if f.Subject == "" || f.Summary == "" || f.Fix == "" || f.Severity == "" {
			t.Errorf("incomplete finding %+v", f)
		}
	}
	out, _, code = runCLI(t, nil, "host", "check", "-c", uri, "--timeout", "6s")
	for _, s := range []string{"NETWORK", "default", "nat", "virbr0", "192.168.122.0/24", "network_autostart_off", "1 network: findings: 0 error, 1 warning, 1 info"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	if code != 0 {
		t.Errorf("table exit %d", code)
	}
}
