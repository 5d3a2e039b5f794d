package collect

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kvmnet/kvmnet/controller/agentclient"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeLibvirt is a LibvirtSource over fixed data; block makes Domains hang until ctx ends.
type fakeLibvirt struct {
	uri             string
	session, remote bool
	nets            []snapshot.Network
	doms            []snapshot.Domain
	netErr, domErr  error
	blockDomains    bool
}

func (f *fakeLibvirt) URI() string   { return f.uri }
func (f *fakeLibvirt) Session() bool { return f.session }
func (f *fakeLibvirt) Remote() bool  { return f.remote }
func (f *fakeLibvirt) Networks(ctx context.Context) ([]snapshot.Network, error) {
	return f.nets, f.netErr
}
func (f *fakeLibvirt) Domains(ctx context.Context) ([]snapshot.Domain, error) {
	if f.blockDomains {
		select {} // ignores its context on purpose: collect must not wait for it
	}
	// a deep enough copy: collect writes ChannelAccess into its own slice
	return append([]snapshot.Domain(nil), f.doms...), f.domErr
}

// fakeAgent is a kvmnetv1.AgentServer answering from fixed state; hang makes GetState never answer
// (it ignores its context, like a wedged agent) until release is closed.
type fakeAgent struct {
	kvmnetv1.UnimplementedAgentServer
	state   *kvmnetv1.GuestState
	hang    bool
	release chan struct{}
	mu      sync.Mutex
	checks  []*kvmnetv1.Check
}

func (a *fakeAgent) GetState(ctx context.Context, _ *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	if a.hang {
		<-a.release
		return nil, status.Error(codes.Unavailable, "released")
	}
	return a.state, nil
}

func (a *fakeAgent) RunChecks(ctx context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	a.mu.Lock()
	a.checks = append(a.checks, req.GetChecks()...)
	a.mu.Unlock()
	var out []*kvmnetv1.CheckResult
	for _, c := range req.GetChecks() {
		out = append(out, &kvmnetv1.CheckResult{Check: c, Ok: true, LatencyUs: 100})
	}
	return &kvmnetv1.RunChecksResponse{Results: out}, nil
}

// startAgent serves a fake agent on a unix socket in dir and returns the socket path.
func startAgent(tb testing.TB, dir, name string, a *fakeAgent) string {
	tb.Helper()
	path := filepath.Join(dir, name+".sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatalf("listen %s: %v", path, err)
	}
	srv := grpc.NewServer()
	kvmnetv1.RegisterAgentServer(srv, a)
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() {
		if a.release != nil {
			close(a.release)
		}
		srv.Stop()
	})
	return path
}

// unixDialer reaches the fake agents with the real agent client: the domain XML names the channel
// ("serial:/path"), the fake agent speaks plain gRPC on that socket, so the scheme becomes unix.
func unixDialer() DialFunc {
	return func(ctx context.Context, addr snapshot.AgentAddr) (Agent, error) {
		addr.Scheme = "unix" // the fake agents speak plain gRPC, without the virtio-serial resync
		c, err := agentclient.DialAddr(ctx, addr)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

const testMAC = "52:54:00:00:00:01"

func guestState(name string) *kvmnetv1.GuestState {
	return &kvmnetv1.GuestState{
		Hostname: name,
		Interfaces: []*kvmnetv1.Interface{{Name: "enp1s0", Mac: testMAC, OperState: "up", Carrier: true,
			Ipv4: []string{"192.168.122.50/24"}, DefaultRouteV4: true}},
		Routes: []*kvmnetv1.Route{{Family: 4, Destination: "default", Gateway: "192.168.122.1", Interface: "enp1s0"}},
		Ipv6:   &kvmnetv1.IPv6State{},
		Config: &kvmnetv1.AgentConfig{AllowApply: true},
	}
}

func defaultNet() snapshot.Network {
	return snapshot.Network{Name: "default", Active: true, Autostart: true, Persistent: true, Forward: snapshot.ForwardNAT,
		Bridge: "virbr0", DNSEnabled: true, LeasesSupported: true,
		IPs: []snapshot.NetworkIP{{Family: 4, Address: "192.168.122.1", Prefix: 24, Subnet: "192.168.122.0/24",
			DHCPRanges: []snapshot.DHCPRange{{Start: "192.168.122.2", End: "192.168.122.254"}}}}}
}

func runningDomain(name, sock string) snapshot.Domain {
	d := snapshot.Domain{Name: name, State: "running", NICs: []snapshot.DomainNIC{{MAC: testMAC, Type: "network", Network: "default", Bridge: "virbr0", Target: "vnet0"}}}
	if sock != "" {
		d.Channels = []snapshot.Channel{{Name: snapshot.ChannelKvmnet, Type: "unix", Path: sock, State: "connected"}}
	}
	return d
}

// fleet starts n fake agents (hung ones at the given indexes) and returns a libvirt source whose
// running domains point their channels at them.
func fleet(tb testing.TB, n int, hung ...int) *fakeLibvirt {
	tb.Helper()
	dir := tb.TempDir()
	lv := &fakeLibvirt{uri: "test:///fleet", nets: []snapshot.Network{defaultNet()}}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("vm%03d", i)
		a := &fakeAgent{state: guestState(name)}
		for _, h := range hung {
			if h == i {
				a.hang, a.release = true, make(chan struct{})
			}
		}
		lv.doms = append(lv.doms, runningDomain(name, startAgent(tb, dir, name, a)))
	}
	return lv
}

func serialAddr(path string) snapshot.AgentAddr {
	return snapshot.AgentAddr{Scheme: "serial", Path: path}
}
