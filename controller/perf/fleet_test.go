package perf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonm "github.com/Wifx/gonetworkmanager/v2"
	"github.com/godbus/dbus/v5"

	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/nm"
	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/service"
	"github.com/kvmnet/kvmnet/agent/transport"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/serialemu"
)

// fakeLinks is one enp1s0 with a lease-like address and a default route; Watch never fires.
type fakeLinks struct{ mac string }

func (f fakeLinks) Snapshot() ([]*kvmnetv1.Interface, []*kvmnetv1.Route, error) {
	return []*kvmnetv1.Interface{{Name: "enp1s0", Mac: f.mac, OperState: "up", Carrier: true, Mtu: 1500,
			Ipv4: []string{"192.168.122.50/24"}, DefaultRouteV4: true}},
		[]*kvmnetv1.Route{{Family: 4, Destination: "default", Gateway: "192.168.122.1", Interface: "enp1s0"}}, nil
}
func (f fakeLinks) Routes() ([]*kvmnetv1.Route, error) { _, r, err := f.Snapshot(); return r, err }
func (f fakeLinks) Watch(ctx context.Context) (<-chan *kvmnetv1.Event, error) {
	ch := make(chan *kvmnetv1.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// fakeNM reports a running NetworkManager with one DHCP profile on enp1s0; changes fail.
type fakeNM struct{ mac string }

var errFake = errors.New("fake NetworkManager: changes not supported")

func (f fakeNM) State(context.Context) (nm.State, error) {
	return nm.State{Status: nm.Status{Version: "1.42.4"},
		Profiles: []nm.Profile{{ID: "kvm-dhcp-enp1s0", UUID: "2f0c8c6a-0000-4000-8000-000000000001", Type: nm.EthernetType,
			InterfaceName: "enp1s0", IPv4Method: "auto", IPv6Method: "ignore", Active: true, ActiveDevice: "enp1s0", Autoconnect: true}},
		Devices: []nm.Device{{Interface: "enp1s0", Managed: true, State: 100}}}, nil
}
func (f fakeNM) Devices(ctx context.Context) ([]nm.Device, error) {
	s, err := f.State(ctx)
	return s.Devices, err
}
func (f fakeNM) Subscribe(ctx context.Context) (<-chan nm.Event, error) {
	ch := make(chan nm.Event)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}
func (fakeNM) Close() error { return nil }
func (fakeNM) Settings(context.Context, dbus.ObjectPath) (nm.Settings, error) {
	return nil, errFake
}
func (fakeNM) AddProfile(context.Context, nm.Settings) (dbus.ObjectPath, error) { return "", errFake }
func (fakeNM) UpdateProfile(context.Context, dbus.ObjectPath, nm.Settings) error {
	return errFake
}
func (fakeNM) DeleteProfile(context.Context, dbus.ObjectPath) error { return errFake }
func (fakeNM) ProfileByUUID(context.Context, string) (dbus.ObjectPath, error) {
	return "", errFake
}
func (fakeNM) Activate(context.Context, dbus.ObjectPath, dbus.ObjectPath) (dbus.ObjectPath, error) {
	return "", errFake
}
func (fakeNM) WaitIPv4(context.Context, dbus.ObjectPath, dbus.ObjectPath, time.Duration) ([]string, error) {
	return nil, errFake
}
func (fakeNM) CheckpointCreate(context.Context, []dbus.ObjectPath, time.Duration, gonm.NmCheckpointCreateFlags) (dbus.ObjectPath, error) {
	return "", errFake
}
func (fakeNM) CheckpointDestroy(context.Context, dbus.ObjectPath) error               { return errFake }
func (fakeNM) CheckpointAdjust(context.Context, dbus.ObjectPath, time.Duration) error { return nil }
func (fakeNM) CheckpointRollback(context.Context, dbus.ObjectPath) (map[string]uint32, error) {
	return nil, errFake
}

type fakeOS struct{ name string }

func (f fakeOS) Info() (*kvmnetv1.OSInfo, error) {
	return &kvmnetv1.OSInfo{Id: "debian", VersionId: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"}, nil
}
func (f fakeOS) Hostname() (string, error) { return f.name, nil }

type fakeDNS struct{}

func (fakeDNS) State() (*kvmnetv1.DNSState, error) {
	return &kvmnetv1.DNSState{Servers: []string{"192.168.122.1"}}, nil
}

type fakeIPv6 struct{}

func (fakeIPv6) State([]*kvmnetv1.Interface, []*kvmnetv1.Route) (*kvmnetv1.IPv6State, error) {
	return &kvmnetv1.IPv6State{}, nil
}

type fakePkg struct{}

func (fakePkg) State() (*kvmnetv1.PackageManagerState, error) {
	return &kvmnetv1.PackageManagerState{AptForceIpv4: kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_ABSENT}, nil
}

type fakeQGA struct{}

func (fakeQGA) State() *kvmnetv1.QemuGuestAgentState {
	return &kvmnetv1.QemuGuestAgentState{Installed: true, Running: true, ChannelPresent: true}
}

type fakeStack struct{}

func (fakeStack) Annotate(_ context.Context, ifaces []*kvmnetv1.Interface) error {
	for _, in := range ifaces {
		in.Stack = kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER
	}
	return nil
}

// okChecks passes every check without sending a packet: the fan-out benchmark's checks would
// otherwise ping 192.168.122.1 and resolve deb.debian.org from this machine's namespace.
type okChecks struct{}

func (okChecks) Run(_ context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	out := make([]*kvmnetv1.CheckResult, 0, len(req.GetChecks()))
	for _, c := range req.GetChecks() {
		out = append(out, &kvmnetv1.CheckResult{Check: c, Ok: true, LatencyUs: 150})
	}
	return &kvmnetv1.RunChecksResponse{Results: out}, nil
}

// newService builds the real agent/service with fake sensors (files and sysctl stay real, under
// root). checks nil means okChecks.
func newService(tb testing.TB, root, name, mac string, checks service.CheckRunner) *service.Service {
	tb.Helper()
	if checks == nil {
		checks = okChecks{}
	}
	cfg := config.Default()
	cfg.Root, cfg.AllowApply = root, true
	svc, err := service.New(service.Options{Version: "bench", Config: cfg,
		NM: fakeNM{mac}, Links: fakeLinks{mac}, Stack: fakeStack{}, IPv6: fakeIPv6{}, PkgConf: fakePkg{},
		DNS: fakeDNS{}, QGA: fakeQGA{}, OS: fakeOS{name}, Checks: checks})
	if err != nil {
		tb.Fatalf("service.New: %v", err)
	}
	tb.Cleanup(func() { _ = svc.Close() })
	return svc
}

// hungAgent never answers GetState (it ignores its context, like a wedged agent) until released.
type hungAgent struct {
	kvmnetv1.AgentServer
	release chan struct{}
}

func (h hungAgent) GetState(context.Context, *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	<-h.release
	return nil, errors.New("released")
}

// serve runs a real agent server (agent/server) for svc on l until the test ends.
func serve(tb testing.TB, svc kvmnetv1.AgentServer, l net.Listener) {
	tb.Helper()
	s := server.New(svc, server.Options{AllowApply: true})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
		_ = l.Close()
		<-done
	})
}

// serialGuest emulates a domain's org.kvmnet.agent.0 channel at dir/name.sock with an agent behind
// it (the guest half: serial listener + resync handshake) and returns the host socket path.
func serialGuest(tb testing.TB, dir, name string, svc kvmnetv1.AgentServer) string {
	tb.Helper()
	e, err := serialemu.New(filepath.Join(dir, name+".sock"), serialemu.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	serve(tb, svc, transport.NewSerialListener(e, transport.SerialOptions{}))
	return e.HostPath()
}

// fleet starts n guests (the one at index hung, if >= 0, never answers GetState), writes a libvirt
// test-driver node file with the default NAT network and n running domains whose kvmnet channels
// point at those guests, and returns its test:/// URI and the domain names.
func fleet(tb testing.TB, n, hung int) (string, []string) {
	tb.Helper()
	dir := tb.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	var xml strings.Builder
	xml.WriteString("<node>\n" + nodeNetwork)
	names := make([]string, n)
	for i := range n {
		name, mac := fmt.Sprintf("vm%03d", i), fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff)
		var svc kvmnetv1.AgentServer = newService(tb, root, name, mac, nil)
		var release chan struct{}
		if i == hung {
			release = make(chan struct{})
			svc = hungAgent{AgentServer: svc, release: release}
		}
		names[i] = name
		xml.WriteString(nodeDomain(name, mac, serialGuest(tb, dir, name, svc)))
		if release != nil {
			tb.Cleanup(func() { close(release) }) // runs before the server's Stop (cleanups are LIFO)
		}
	}
	xml.WriteString("</node>\n")
	path := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(path, []byte(xml.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return "test://" + path, names
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
	return fmt.Sprintf(`  <domain type='test'>
    <name>%s</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices>
      <interface type='network'><mac address='%s'/><source network='default'/><model type='virtio'/></interface>
      <channel type='unix'><source mode='bind' path='%s'/><target type='virtio' name='org.kvmnet.agent.0'/></channel>
    </devices>
  </domain>
`, name, mac, sock)
}

// binary returns the path of a built binary named by env (scripts/bench.sh sets them after
// `make build`), or fails the benchmark saying how to build it.
func binary(tb testing.TB, env, def string) string {
	tb.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = filepath.Join("..", "..", "bin", def)
	}
	abs, err := filepath.Abs(p)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		tb.Fatalf("%s: %v (run `make build`, or set %s)", p, err, env)
	}
	return abs
}

// run runs argv and returns its combined output and exit code (-1: did not start).
func run(ctx context.Context, argv ...string) (string, int) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	return string(out) + err.Error(), -1
}
