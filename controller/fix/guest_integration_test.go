package fix_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kvmnet/kvmnet/agent/checks"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/link"
	"github.com/kvmnet/kvmnet/agent/server"
	"github.com/kvmnet/kvmnet/agent/service"
	"github.com/kvmnet/kvmnet/agent/transport"
	"github.com/kvmnet/kvmnet/controller/agentclient"
	checkset "github.com/kvmnet/kvmnet/controller/checks"
	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/fix"
	"github.com/kvmnet/kvmnet/controller/fixplan"
	"github.com/kvmnet/kvmnet/controller/output"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// The guest-fix integration tests run the whole chain with real components, in namespaces the test
// creates (prefix "fx"): a "guest" namespace whose NIC enp1s0 (a veth) is managed by a real
// NetworkManager on a private D-Bus, a "host" namespace with the bridge br0 (10.88.0.1/24) and a
// real dnsmasq (DHCP + DNS) on it, the real agent service (agent/service) served by the real agent
// server over a unix socket (agent/transport.ListenUnix), and the controller side — controller/collect
// with a small libvirt source describing the one running domain, controller/diagnose, the real
// agent client, and controller/fix — driving it. Only libvirt itself is described rather than run:
// the lease list comes from the lab dnsmasq's lease file.

const (
	fxMAC       = "52:54:00:88:00:01"
	fxBridgeIP  = "10.88.0.1"
	fxCheckName = "check.kvmnet.test"
	fxNetwork   = "fxnet"
	fxDomain    = "vm1"
)

// staleEth0 is a profile hard-coded to eth0: on a guest whose NIC is enp1s0 it never activates
// (what cloning a VM from another hypervisor or a net.ifnames change leaves behind).
const staleEth0 = `[connection]
id=Wired eth0
uuid=6f2f0d6e-8888-4888-8888-000000000001
type=ethernet
interface-name=eth0

[ipv4]
method=auto
`

var fxBinaries = []string{"ip", "dbus-daemon", "NetworkManager", "dnsmasq", "unshare", "nft"}

type guestLab struct {
	guest, host *testenv.Netns
	dhcp        *testenv.Dnsmasq
	bus         *testenv.Bus
	nm          *testenv.NM
	svc         *service.Service
	sock        string
}

// newGuestLab builds the lab. allowApply false runs the agent in report-only mode.
func newGuestLab(t *testing.T, allowApply bool) *guestLab {
	t.Helper()
	l := &guestLab{guest: testenv.NewNetns(t, "fx"), host: testenv.NewNetns(t, "fx")}
	l.host.Bridge("br0", fxBridgeIP+"/24")
	l.guest.Veth("enp1s0", l.host, "p0")
	l.guest.MustRun("ip", "link", "set", "enp1s0", "address", fxMAC)
	l.host.BridgePort("p0", "br0")
	l.dhcp = testenv.StartDnsmasq(t, l.host, testenv.DnsmasqOptions{Interface: "br0", DNS: true,
		Range: "10.88.0.100,10.88.0.199,255.255.255.0,1h", Extra: []string{"--address=/" + fxCheckName + "/" + fxBridgeIP}})
	// The egress check's default target is the check name on port 80: the "internet" answers there.
	l.host.ServeHTTP(fxBridgeIP + ":80")
	l.bus = testenv.StartBus(t, l.guest)
	l.nm = testenv.StartNM(t, l.guest, l.bus, testenv.NMOptions{Keyfiles: map[string]string{"wired-eth0.nmconnection": staleEth0}})

	nsh, err := netns.GetFromName(l.guest.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	root := t.TempDir()
	for _, d := range []string{"etc/sysctl.d", "proc/sys/net/ipv6/conf/all", "proc/sys/net/ipv6/conf/default"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links, err := link.New(link.Options{Handle: h, Namespace: &nsh, SysRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Root = root
	cfg.AllowApply = allowApply
	svc, err := service.New(service.Options{Version: "test", Config: cfg, BusAddress: l.bus.Address, NMCallTimeout: 5 * time.Second,
		Links: links, Checks: nsChecks{ns: nsh, inner: checks.New(checks.Options{Routes: links, Resolver: guestResolver(nsh)})}})
	if err != nil {
		t.Fatal(err)
	}
	l.svc = svc
	t.Cleanup(func() { _ = svc.Close() })

	dir, err := os.MkdirTemp("", "kvmt-fx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l.sock = filepath.Join(dir, "agent.sock")
	ln, err := transport.ListenUnix(l.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(svc, server.Options{AllowApply: allowApply})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		_ = ln.Close()
	})
	l.waitManaged(t)
	return l
}

// nsChecks runs the agent's real check runner with every socket in the guest namespace: each check
// runs on its own OS thread moved into the namespace (the thread is discarded afterwards).
type nsChecks struct {
	ns    netns.NsHandle
	inner *checks.Runner
}

func (c nsChecks) Run(ctx context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	if err := checks.Validate(req); err != nil {
		return nil, err
	}
	out := make([]*kvmnetv1.CheckResult, len(req.GetChecks()))
	var wg sync.WaitGroup
	for i, ch := range req.GetChecks() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := inNetns(c.ns, func() { out[i] = c.inner.RunOne(ctx, ch) })
			if err != nil {
				out[i] = &kvmnetv1.CheckResult{Check: ch, Error: err.Error()}
			}
		}()
	}
	wg.Wait()
	return &kvmnetv1.RunChecksResponse{Results: out}, nil
}

// guestResolver is the guest's resolver as NetworkManager would configure it from DHCP (the test
// NetworkManager runs with dns=none): the bridge's dnsmasq, queried from inside the guest namespace.
// The machine's own /etc/resolv.conf servers are never contacted.
func guestResolver(ns netns.NsHandle) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var c net.Conn
		var err error
		if nerr := inNetns(ns, func() {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, net.JoinHostPort(fxBridgeIP, "53"))
		}); nerr != nil {
			return nil, nerr
		}
		return c, err
	}}
}

// inNetns runs f on an OS thread moved into ns, then moves the thread back; the thread returns to
// the runtime only once it is back in its own namespace (otherwise it exits with the goroutine).
// Sockets f creates belong to ns.
func inNetns(ns netns.NsHandle, f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read own network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter guest namespace: %w", err)
			return
		}
		f()
		if err := netns.Set(orig); err != nil {
			errc <- nil // stays locked: the thread is discarded rather than reused in the wrong namespace
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

func (l *guestLab) waitManaged(t *testing.T) {
	t.Helper()
	err := testenv.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		st, err := l.svc.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
		if err != nil {
			return false, err
		}
		for _, in := range st.GetInterfaces() {
			if in.GetName() == "enp1s0" && in.GetStack() == kvmnetv1.NetworkStack_NETWORK_STACK_NETWORK_MANAGER {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("enp1s0 not managed by NetworkManager: %v\n%s", err, l.nm.Proc.Output())
	}
}

// labLibvirt describes what libvirt would report for the lab: one NAT network on br0 whose leases
// are the lab dnsmasq's, and one running domain whose NIC has the guest veth's MAC and whose kvmnet
// channel is the agent's socket.
type labLibvirt struct{ l *guestLab }

func (labLibvirt) URI() string   { return "test:///fx-nmlab" }
func (labLibvirt) Session() bool { return false }
func (labLibvirt) Remote() bool  { return true } // no host facts of this machine: the "host" is a namespace
func (s labLibvirt) Networks(context.Context) ([]snapshot.Network, error) {
	leases, err := s.l.leases()
	if err != nil {
		return nil, err
	}
	return []snapshot.Network{{Name: fxNetwork, Active: true, Autostart: true, Persistent: true, Forward: snapshot.ForwardNAT,
		Bridge: "br0", DNSEnabled: true, LeasesSupported: true, Leases: leases,
		IPs: []snapshot.NetworkIP{{Family: 4, Address: fxBridgeIP, Prefix: 24, Subnet: "10.88.0.0/24",
			DHCPRanges: []snapshot.DHCPRange{{Start: "10.88.0.100", End: "10.88.0.199"}}}}}}, nil
}
func (s labLibvirt) Domains(context.Context) ([]snapshot.Domain, error) {
	return []snapshot.Domain{{Name: fxDomain, State: "running",
		NICs:     []snapshot.DomainNIC{{MAC: fxMAC, Type: "network", Network: fxNetwork, Bridge: "br0", Target: "p0", Model: "virtio"}},
		Channels: []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: s.l.sock, State: "connected"}}}}, nil
}

func (l *guestLab) leases() ([]snapshot.Lease, error) {
	ls, err := l.dhcp.Leases()
	if err != nil {
		return nil, err
	}
	var out []snapshot.Lease
	for _, x := range ls {
		out = append(out, snapshot.Lease{MAC: snapshot.ParseMAC(x.MAC), IP: x.IP, Prefix: 24, Family: 4, Hostname: x.Hostname})
	}
	return out, nil
}

// dial reaches the agent with the real client. The domain's channel names the socket; the agent
// behind it speaks plain gRPC on a unix socket (no virtio-serial resync), so the scheme is unix.
func dial(ctx context.Context, addr snapshot.AgentAddr) (*agentclient.Client, error) {
	addr.Scheme = "unix"
	return agentclient.DialAddr(ctx, addr, agentclient.WithDialTimeout(10*time.Second))
}

func (l *guestLab) deps(out *bytes.Buffer) fix.GuestDeps {
	return fix.GuestDeps{
		Snapshot: func(ctx context.Context) (snapshot.Snapshot, []diagnose.Finding, error) {
			c, err := collect.New(collect.Sources{Libvirt: labLibvirt{l}, Agents: collect.DialFunc(func(ctx context.Context, addr snapshot.AgentAddr) (collect.Agent, error) {
				return dial(ctx, addr)
			})}, collect.Options{Timeout: 30 * time.Second, Checks: true, Targets: checkset.Targets{DNSName: fxCheckName}, Domains: []string{fxDomain}})
			if err != nil {
				return snapshot.Snapshot{}, nil, err
			}
			s, err := c.Collect(ctx)
			if err != nil {
				return s, nil, err
			}
			r, _ := diagnose.Diagnose(s).OnlyGuests(fxDomain)
			return s, r.All(), nil
		},
		DialAgent: func(ctx context.Context, g snapshot.Guest) (fix.Agent, error) { return dial(ctx, g.Addr) },
		Leases: func(_ context.Context, network string) ([]snapshot.Lease, error) {
			if network != fxNetwork {
				return nil, fmt.Errorf("no network %q", network)
			}
			return l.leases()
		},
		Events:       output.NewFixPrinter(out, false).Event,
		PollInterval: 500 * time.Millisecond,
	}
}

// profiles is NetworkManager's profile list as the agent reports it (id → interface, active).
func (l *guestLab) profiles(t *testing.T) map[string]string {
	t.Helper()
	st, err := l.svc.GetState(context.Background(), &kvmnetv1.GetStateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetNetworkManager().GetRunning() {
		t.Fatalf("NetworkManager not running: %s", st.GetNetworkManager().GetError())
	}
	out := map[string]string{}
	for _, p := range st.GetNetworkManager().GetProfiles() {
		out[p.GetId()] = fmt.Sprintf("if=%s active=%v dev=%s ipv4=%s", p.GetInterfaceName(), p.GetActive(), p.GetActiveDevice(), p.GetIpv4Method())
	}
	return out
}

// keyfiles is the keyfile directory's content (name → body).
func (l *guestLab) keyfiles(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(l.nm.ConnDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(l.nm.ConnDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// checkpoints lists NetworkManager's checkpoints (D-Bus property Checkpoints).
func (l *guestLab) checkpoints(t *testing.T) []dbus.ObjectPath {
	t.Helper()
	conn, err := dbus.Connect(l.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v, err := conn.Object("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager").
		GetProperty("org.freedesktop.NetworkManager.Checkpoints")
	if err != nil {
		t.Fatal(err)
	}
	cps, _ := v.Value().([]dbus.ObjectPath)
	return cps
}

func codes(fs []diagnose.Finding) []diagnose.Code { return diagnose.Codes(fs) }

// transcript logs a command's output and appends it to $KVMNET_FX_TRANSCRIPTS when set.
func transcript(t *testing.T, title, text string) {
	t.Helper()
	t.Logf("%s:\n%s", title, text)
	if p := os.Getenv("KVMNET_FX_TRANSCRIPTS"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintf(f, "===== %s =====\n%s\n", title, text)
	}
}

// cliContext bounds a fix the way `kvmnetctl guests fix` does (rollback window + 2 x --timeout +
// 30 s), so agent calls carry that deadline rather than the client's 10 s default.
func cliContext(t *testing.T, rollback time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), rollback+2*10*time.Second+30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fxOpts(timeout time.Duration) fixplan.GuestOptions {
	return fixplan.GuestOptions{Domain: fxDomain, RollbackTimeout: timeout, CheckDNSName: fxCheckName}
}

// TestGuestFixRealNM: a guest whose only profile is bound to eth0 (its NIC is enp1s0) is diagnosed
// as guest_profile_wrong_interface; a dry run computes the real diff in the guest and changes
// nothing; the fix creates kvm-dhcp-enp1s0 under a checkpoint, a lease appears in the DHCP server,
// the agent's checks (gateway ping, DNS through the bridge's dnsmasq, TCP bridge:53) pass from the
// guest namespace, and the change is confirmed: the profile stays, the checkpoint is gone, and the
// finding is gone on the next diagnosis.
func TestGuestFixRealNM(t *testing.T) {
	testenv.Require(t, fxBinaries...)
	l := newGuestLab(t, true)
	ctx := cliContext(t, 30*time.Second)

	var out bytes.Buffer
	d := l.deps(&out)
	s, fs, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(codes(fs), diagnose.CodeGuestProfileWrongInterface) {
		t.Fatalf("diagnosis %v lacks guest_profile_wrong_interface (guest: %+v)", codes(fs), s.Guests)
	}

	t.Run("dry run changes nothing", func(t *testing.T) {
		profBefore, filesBefore := l.profiles(t), l.keyfiles(t)
		var out bytes.Buffer
		res, err := fix.Guest(ctx, l.deps(&out), fxOpts(30*time.Second), true)
		transcript(t, "kvmnetctl guests fix vm1 --dry-run", out.String())
		if err != nil {
			t.Fatal(err)
		}
		if res.Confirmed || res.RolledBack || res.Applied != nil || res.Preview == nil || !res.Preview.GetDryRun() {
			t.Fatalf("result %+v", res)
		}
		var summaries []string
		for _, c := range res.Preview.GetChanges() {
			summaries = append(summaries, c.GetSummary())
		}
		all := strings.Join(summaries, "\n")
		for _, want := range []string{`delete profile "Wired eth0"`, "create profile kvm-dhcp-enp1s0"} {
			if !strings.Contains(all, want) {
				t.Errorf("preview lacks %q:\n%s", want, all)
			}
		}
		if !strings.Contains(out.String(), "dry run: nothing was changed") || !strings.Contains(out.String(), "[guest_profile_wrong_interface]") {
			t.Errorf("output:\n%s", out.String())
		}
		if got := l.profiles(t); !mapsEqual(got, profBefore) {
			t.Fatalf("profiles changed by a dry run: %v -> %v", profBefore, got)
		}
		if got := l.keyfiles(t); !mapsEqual(got, filesBefore) {
			t.Fatalf("keyfiles changed by a dry run")
		}
		if cps := l.checkpoints(t); len(cps) != 0 {
			t.Fatalf("dry run left checkpoints %v", cps)
		}
		if ip := l.dhcp.LeaseFor(fxMAC); ip != "" {
			t.Fatalf("dry run got a lease %s", ip)
		}
	})

	t.Run("fix is applied, verified and confirmed", func(t *testing.T) {
		var out bytes.Buffer
		start := time.Now()
		res, err := fix.Guest(ctx, l.deps(&out), fxOpts(30*time.Second), false)
		transcript(t, "kvmnetctl guests fix vm1 --yes", out.String())
		if err != nil {
			t.Fatalf("%v\n%s", err, testenv.DHCPReport(l.nm, l.dhcp, l.guest, l.host))
		}
		t.Logf("measured: guest fix (plan, preview, apply, verify, confirm) took %s", time.Since(start))
		if !res.Confirmed || res.RolledBack || res.Applied.GetCheckpointId() == "" {
			t.Fatalf("result %+v", res)
		}
		if !strings.Contains(out.String(), "verified and confirmed: vm1 is fixed") {
			t.Errorf("output:\n%s", out.String())
		}
		if ip := l.dhcp.LeaseFor(fxMAC); ip == "" {
			t.Fatal("no lease for the guest's MAC")
		}
		p := l.profiles(t)
		if kp := p["kvm-dhcp-enp1s0"]; !strings.Contains(kp, "if=enp1s0 active=true dev=enp1s0 ipv4=auto") {
			t.Fatalf("kvm-dhcp-enp1s0: %q (profiles %v)", kp, p)
		}
		if _, ok := p["Wired eth0"]; ok {
			t.Fatalf("the profile bound to eth0 is still there: %v", p)
		}
		if cps := l.checkpoints(t); len(cps) != 0 {
			t.Fatalf("checkpoint left after Confirm: %v", cps)
		}
		// The checkpoint's rollback timeout (30 s) would have undone an unconfirmed change; the
		// profile is still active well after Confirm (the NM checkpoint is destroyed, not pending).
		_, fs, err := d.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []diagnose.Code{diagnose.CodeGuestProfileWrongInterface, diagnose.CodeGuestNoIPv4, diagnose.CodeGuestNoLease} {
			if slices.Contains(codes(fs), c) {
				t.Errorf("after the fix the diagnosis still has %s: %v", c, codes(fs))
			}
		}
		// A second fix has nothing to do in the guest.
		var again bytes.Buffer
		res, err = fix.Guest(ctx, l.deps(&again), fxOpts(30*time.Second), false)
		if err != nil || res.Applied != nil {
			t.Fatalf("second fix: %v %+v\n%s", err, res, again.String())
		}
	})
}

// TestGuestFixVerificationFailsRollsBack: the host namespace drops the guest's ICMP and DNS to the
// bridge (DHCP still works): the agent applies, a lease appears, but the gateway and DNS checks fail
// until the verification budget runs out; the controller rolls back. The previous profile is back,
// kvm-dhcp-enp1s0 is gone, no checkpoint is left, and the error wraps fix.ErrVerificationFailed
// with the failed checks (kvmnetctl maps it to exit 1: TestGuestFixCLI).
func TestGuestFixVerificationFailsRollsBack(t *testing.T) {
	testenv.Require(t, fxBinaries...)
	l := newGuestLab(t, true)
	l.host.MustRun("nft", "add", "table", "inet", "kvmnet_fx")
	l.host.MustRun("nft", "add", "chain", "inet", "kvmnet_fx", "input", "{ type filter hook input priority 0 ; policy accept ; }")
	l.host.MustRun("nft", "add", "rule", "inet", "kvmnet_fx", "input", "iifname", "br0", "icmp", "type", "echo-request", "drop")
	l.host.MustRun("nft", "add", "rule", "inet", "kvmnet_fx", "input", "iifname", "br0", "udp", "dport", "53", "drop")
	l.host.MustRun("nft", "add", "rule", "inet", "kvmnet_fx", "input", "iifname", "br0", "tcp", "dport", "53", "drop")
	profBefore, filesBefore := l.profiles(t), l.keyfiles(t)

	var out bytes.Buffer
	res, err := fix.Guest(cliContext(t, 15*time.Second), l.deps(&out), fxOpts(15*time.Second), false)
	transcript(t, "kvmnetctl guests fix vm1 --yes --rollback-timeout 15s   (host drops ICMP and DNS from the guest)", out.String()+fmt.Sprintf("kvmnetctl: %v\n", err))
	if !errors.Is(err, fix.ErrVerificationFailed) {
		t.Fatalf("err = %v, want ErrVerificationFailed\n%s", err, out.String())
	}
	for _, want := range []string{"check gateway-v4", "check dns-v4", "check " + checkset.Dnsmasq} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if !res.RolledBack || res.Confirmed || len(res.Failures) == 0 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(out.String(), "verification failed, vm1 rolled back") {
		t.Errorf("output:\n%s", out.String())
	}
	if l.dhcp.LeaseFor(fxMAC) == "" {
		t.Error("the change never got a lease: this case must fail in the checks, not in DHCP")
	}
	// Previous state back.
	err = testenv.WaitFor(15*time.Second, 200*time.Millisecond, func() (bool, error) {
		return mapsEqual(l.profiles(t), profBefore), nil
	})
	if err != nil {
		t.Fatalf("profiles after rollback %v, before %v", l.profiles(t), profBefore)
	}
	// The deleted profile is re-added by the agent (NetworkManager checkpoints do not restore
	// deleted profiles): same uuid and settings, though NetworkManager names the new keyfile after
	// the profile id.
	if got, want := profileKeys(l.keyfiles(t)), profileKeys(filesBefore); !slices.Equal(got, want) {
		t.Fatalf("keyfiles after rollback: %v, before: %v", got, want)
	}
	if cps := l.checkpoints(t); len(cps) != 0 {
		t.Fatalf("checkpoints left: %v", cps)
	}
	if a := l.guestIPv4(t); a != "" {
		t.Fatalf("enp1s0 still has %s after the rollback", a)
	}
}

// TestGuestFixDHCPBlockedRollsBack: dnsmasq is stopped (by PID) in the host namespace, so the guest
// cannot get a lease at all: the agent's own wait for an address fails inside Apply and the agent
// rolls its checkpoint back; the controller reports the failure and nothing is left changed.
func TestGuestFixDHCPBlockedRollsBack(t *testing.T) {
	testenv.Require(t, fxBinaries...)
	l := newGuestLab(t, true)
	profBefore, filesBefore := l.profiles(t), l.keyfiles(t)
	l.dhcp.Proc.Stop()

	var out bytes.Buffer
	res, err := fix.Guest(cliContext(t, 60*time.Second), l.deps(&out), fxOpts(60*time.Second), false)
	transcript(t, "kvmnetctl guests fix vm1 --yes   (DHCP server stopped)", out.String()+fmt.Sprintf("kvmnetctl: %v\n", err))
	if err == nil || res.Confirmed {
		t.Fatalf("fix without DHCP succeeded: %+v", res)
	}
	for _, want := range []string{"apply in vm1", "no IPv4 address on enp1s0", "is a DHCP server answering", "rolled back"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "rolls back by itself") {
		t.Errorf("error says the guest will roll back by itself, but the agent already did: %v", err)
	}
	if !res.RolledBack || !strings.Contains(out.String(), "apply failed in vm1 and the agent rolled it back") {
		t.Errorf("rolled_back=%v, output:\n%s", res.RolledBack, out.String())
	}
	err = testenv.WaitFor(15*time.Second, 200*time.Millisecond, func() (bool, error) {
		return mapsEqual(l.profiles(t), profBefore), nil
	})
	if err != nil {
		t.Fatalf("profiles after failed apply %v, before %v", l.profiles(t), profBefore)
	}
	if got, want := profileKeys(l.keyfiles(t)), profileKeys(filesBefore); !slices.Equal(got, want) {
		t.Fatalf("keyfiles after failed apply: %v, before: %v", got, want)
	}
	if cps := l.checkpoints(t); len(cps) != 0 {
		t.Fatalf("checkpoints left: %v", cps)
	}
}

// TestGuestFixReportOnlyAgent: an agent with allow_apply: false is never asked to change anything;
// the fix fails at once with a message naming report-only mode and the setting.
func TestGuestFixReportOnlyAgent(t *testing.T) {
	testenv.Require(t, fxBinaries...)
	l := newGuestLab(t, false)
	profBefore, filesBefore := l.profiles(t), l.keyfiles(t)
	var out bytes.Buffer
	res, err := fix.Guest(context.Background(), l.deps(&out), fxOpts(30*time.Second), false)
	if err == nil || !strings.Contains(err.Error(), "report-only mode") || !strings.Contains(err.Error(), "allow_apply: false") {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if res.Preview != nil || res.Applied != nil {
		t.Fatalf("the agent was asked to apply: %+v", res)
	}
	// The agent itself refuses too (the server gate), should a controller skip the plan check.
	c, err := dial(context.Background(), snapshot.AgentAddr{Scheme: "unix", Path: l.sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Apply(context.Background(), &kvmnetv1.ApplyRequest{Actions: []*kvmnetv1.Action{{Action: &kvmnetv1.Action_EnsureDhcpProfile{
		EnsureDhcpProfile: &kvmnetv1.EnsureDHCPProfile{Mac: fxMAC}}}}, RollbackTimeoutSeconds: 30}); err == nil || !strings.Contains(err.Error(), "allow_apply") {
		t.Fatalf("report-only agent accepted Apply: %v", err)
	}
	if !mapsEqual(l.profiles(t), profBefore) || !mapsEqual(l.keyfiles(t), filesBefore) || len(l.checkpoints(t)) != 0 {
		t.Fatal("report-only agent changed the guest")
	}
}

func (l *guestLab) guestIPv4(t *testing.T) string {
	t.Helper()
	out, err := l.guest.Run("ip", "-4", "-o", "addr", "show", "dev", "enp1s0")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// profileKeys reduces keyfiles to what identifies a profile and decides its behaviour: id, uuid,
// interface name and IPv4 method (sorted).
func profileKeys(files map[string]string) []string {
	var out []string
	for _, body := range files {
		var id, uuid, ifname, method string
		section := ""
		for _, line := range strings.Split(body, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "[") {
				section = line
				continue
			}
			k, v, _ := strings.Cut(line, "=")
			switch {
			case section == "[connection]" && k == "id":
				id = v
			case section == "[connection]" && k == "uuid":
				uuid = v
			case section == "[connection]" && k == "interface-name":
				ifname = v
			case section == "[ipv4]" && k == "method":
				method = v
			}
		}
		out = append(out, fmt.Sprintf("id=%s uuid=%s if=%s ipv4=%s", id, uuid, ifname, method))
	}
	slices.Sort(out)
	return out
}
