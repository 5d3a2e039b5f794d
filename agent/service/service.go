package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvmnet/kvmnet/agent/apply"
	"github.com/kvmnet/kvmnet/agent/checks"
	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/dns"
	"github.com/kvmnet/kvmnet/agent/link"
	"github.com/kvmnet/kvmnet/agent/managedfile"
	"github.com/kvmnet/kvmnet/agent/netstack"
	"github.com/kvmnet/kvmnet/agent/netstack/cmdrun"
	"github.com/kvmnet/kvmnet/agent/nm"
	"github.com/kvmnet/kvmnet/agent/osinfo"
	"github.com/kvmnet/kvmnet/agent/pkgconf"
	"github.com/kvmnet/kvmnet/agent/qga"
	"github.com/kvmnet/kvmnet/agent/sysctl"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/vishvananda/netlink"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Links is interface and route discovery with change events (agent/link's *Discoverer).
type Links interface {
	Snapshot() ([]*kvmnetv1.Interface, []*kvmnetv1.Route, error)
	Routes() ([]*kvmnetv1.Route, error)
	Watch(ctx context.Context) (<-chan *kvmnetv1.Event, error)
}

// NetworkManager is what the service needs from agent/nm's *Client: reading, signals, and the
// changes agent/apply makes.
type NetworkManager interface {
	apply.NM
	Devices(ctx context.Context) ([]nm.Device, error)
	Subscribe(ctx context.Context) (<-chan nm.Event, error)
	Close() error
}

// StackAnnotator sets Stack/StackDetail on interfaces (agent/netstack's *Detector).
type StackAnnotator interface {
	Annotate(ctx context.Context, ifaces []*kvmnetv1.Interface) error
}

// IPv6Reader reports IPv6 sysctls and usability (agent/sysctl's *Reader).
type IPv6Reader interface {
	State(ifaces []*kvmnetv1.Interface, routes []*kvmnetv1.Route) (*kvmnetv1.IPv6State, error)
}

// PackageManagerReader reports apt/dnf IPv4 settings (agent/pkgconf's *Manager).
type PackageManagerReader interface {
	State() (*kvmnetv1.PackageManagerState, error)
}

// DNSReader reports the resolver configuration (agent/dns's *Reader).
type DNSReader interface {
	State() (*kvmnetv1.DNSState, error)
}

// QGAReader reports qemu-guest-agent (agent/qga's *Checker).
type QGAReader interface {
	State() *kvmnetv1.QemuGuestAgentState
}

// OSReader reports the OS and host name (agent/osinfo's *Reader).
type OSReader interface {
	Info() (*kvmnetv1.OSInfo, error)
	Hostname() (string, error)
}

// CheckRunner runs connectivity checks (agent/checks' *Runner).
type CheckRunner interface {
	Run(ctx context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error)
}

// Options configures the service. Nil dependencies are built from Config (the real backends).
type Options struct {
	// Version of the agent, reported in GetState.
	Version string
	// Config is the agent's effective configuration.
	Config config.Config
	// Logger receives one line per change and per problem. Default: discard.
	Logger *slog.Logger

	// BusAddress of the system bus for NetworkManager when NM is nil ("" = $DBUS_SYSTEM_BUS_ADDRESS
	// or /run/dbus/system_bus_socket).
	BusAddress string
	// NMCallTimeout bounds each D-Bus call (default nm.DefaultCallTimeout).
	NMCallTimeout time.Duration

	NM      NetworkManager
	Links   Links
	Stack   StackAnnotator
	IPv6    IPv6Reader
	PkgConf PackageManagerReader
	DNS     DNSReader
	QGA     QGAReader
	OS      OSReader
	Checks  CheckRunner
	Files   apply.Files
	Sysctl  apply.Sysctl
	// Stacks chooses the network stack backend per NIC (default: agent/netstack's NetworkManager
	// backend over NM, and its netplan, networkd and ifupdown backends under Config.Root, with the
	// manage_* opt-outs).
	Stacks apply.Stacks
	// Runner runs the stacks' commands (default: os/exec).
	Runner netstack.Runner
	// Addrs reads NIC addresses for the stacks' lease wait (default: the standard library).
	Addrs apply.AddrReader
	// Records keeps a pending checkpoint's rollback record; default apply.FileRecords in the state
	// directory under Config.Root.
	Records apply.RecordStore
	// Now returns the time stamped on states and events. Default time.Now.
	Now func() time.Time
}

// Service implements kvmnetv1.AgentServer.
type Service struct {
	kvmnetv1.UnimplementedAgentServer
	o       Options
	log     *slog.Logger
	applier *apply.Applier
	hub     *hub
	probe   *nmProbe
	udev    apply.Udev
	stateMu sync.Mutex // one GetState at a time shares the primed probe
	closers []func() error
}

var _ kvmnetv1.AgentServer = (*Service)(nil)

// New builds the service, wiring real backends for every nil dependency: netlink in the agent's own
// namespace, NetworkManager on the system bus, and the readers and file store under Config.Root.
func New(opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	root := opts.Config.Root
	if root == "" {
		root = "/"
		opts.Config.Root = root
	}
	s := &Service{o: opts, log: opts.Logger, hub: newHub()}
	var err error
	fail := func(what string, err error) (*Service, error) {
		_ = s.Close()
		return nil, fmt.Errorf("agent service: %s: %w", what, err)
	}
	if s.o.NM == nil {
		c := nm.Dial(opts.BusAddress, nm.Options{CallTimeout: opts.NMCallTimeout, Logger: opts.Logger})
		s.o.NM = c
		s.closers = append(s.closers, c.Close)
	}
	if s.o.Links == nil {
		h, err := netlink.NewHandle()
		if err != nil {
			return fail("netlink", err)
		}
		s.closers = append(s.closers, func() error { h.Close(); return nil })
		if s.o.Links, err = link.New(link.Options{Handle: h, SysRoot: root, Logger: opts.Logger}); err != nil {
			return fail("link discovery", err)
		}
	}
	s.probe = &nmProbe{c: s.o.NM}
	if s.o.Stack == nil {
		if s.o.Stack, err = netstack.New(netstack.Options{Root: root, NM: s.probe}); err != nil {
			return fail("stack detection", err)
		}
	}
	if s.o.IPv6 == nil {
		if s.o.IPv6, err = sysctl.NewReader(root); err != nil {
			return fail("ipv6 reader", err)
		}
	}
	var store *managedfile.Store
	if s.o.Files == nil || s.o.PkgConf == nil {
		store, err = managedfile.New(managedfile.Options{Root: root, StateDir: opts.Config.StateDir, Logger: opts.Logger})
		if err != nil {
			return fail("file store", err)
		}
		if s.o.Files == nil {
			s.o.Files = store
		}
	}
	if s.o.PkgConf == nil {
		if s.o.PkgConf, err = pkgconf.New(root, store); err != nil {
			return fail("package manager reader", err)
		}
	}
	if s.o.DNS == nil {
		if s.o.DNS, err = dns.New(root); err != nil {
			return fail("dns reader", err)
		}
	}
	if s.o.QGA == nil {
		if s.o.QGA, err = qga.New(root); err != nil {
			return fail("qemu-guest-agent checker", err)
		}
	}
	if s.o.OS == nil {
		if s.o.OS, err = osinfo.New(root); err != nil {
			return fail("os info", err)
		}
	}
	if s.o.Checks == nil {
		s.o.Checks = checks.New(checks.Options{Routes: s.o.Links})
	}
	if s.o.Sysctl == nil {
		s.o.Sysctl = apply.ProcSysctl{Root: root}
	}
	if s.o.Stacks == nil {
		det, err := netstack.New(netstack.Options{Root: root, NM: s.probe})
		if err != nil {
			return fail("stack selection", err)
		}
		backends := []netstack.Backend{netstack.NewNetworkManager(s.o.NM, opts.Logger),
			netstack.NewNetplan(root), netstack.NewNetworkd(root), netstack.NewIfupdown(root)}
		s.o.Stacks = netstack.NewSelector(det, netstack.NewChooser(backends, opts.Config.DisabledStacks()))
	}
	if s.o.Runner == nil {
		s.o.Runner = cmdrun.Exec{}
	}
	if s.o.Addrs == nil {
		s.o.Addrs = apply.NetAddrs{}
	}
	s.udev = apply.UdevDB{Root: root}
	if s.o.Records == nil {
		sd := opts.Config.StateDir
		if sd == "" {
			sd = managedfile.DefaultStateDir
		}
		s.o.Records = apply.FileRecords{Path: filepath.Join(root, sd, apply.RecordFile)}
	}
	s.applier = apply.New(apply.Options{
		Config: opts.Config, NM: s.o.NM, Files: s.o.Files, Sysctl: s.o.Sysctl, NICs: nicLister{s.o.Links},
		Stacks: s.o.Stacks, Runner: s.o.Runner, Addrs: s.o.Addrs,
		Records: s.o.Records, Logger: opts.Logger, OnEvent: func(summary string) {
			s.hub.publish(&kvmnetv1.Event{Time: timestamppb.New(s.o.Now()), Kind: kvmnetv1.EventKind_EVENT_KIND_CHECKPOINT, Summary: summary})
		},
	})
	// A checkpoint the previous agent process left pending (it was killed, or the guest rebooted) is
	// undone or taken over before anything is served. A failure here is logged, not fatal: the agent
	// that cannot restore must still report the guest.
	if restored, err := s.applier.Resume(context.Background()); err != nil {
		s.log.Error("checkpoint left by the previous agent process", "error", err)
	} else if len(restored) > 0 {
		s.log.Warn("checkpoint left by the previous agent process rolled back", "restored", strings.Join(restored, "; "))
	}
	return s, nil
}

// Close rolls back a pending checkpoint (nobody can confirm it once the agent stops) and releases
// the backends New created.
func (s *Service) Close() error {
	var errs []error
	if s.applier != nil {
		errs = append(errs, s.applier.Close())
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// GetState collects the guest's view. Problems of single sensors land in collection_errors; the
// rest of the state is still returned.
//
// The collectors are independent reads, so they overlap: NetworkManager's D-Bus reads (the slow
// part: round trips through the bus daemon and NetworkManager), qemu-guest-agent's process scan and
// the file readers run in their own goroutines while this one reads netlink and the IPv6 sysctls;
// the stack detection, which needs both the interfaces and NetworkManager's devices, runs once both
// are there. The result (fields, evidence, the order of collection_errors) is that of a sequential
// collection.
func (s *Service) GetState(ctx context.Context, _ *kvmnetv1.GetStateRequest) (*kvmnetv1.GuestState, error) {
	st := &kvmnetv1.GuestState{AgentVersion: s.o.Version, CollectedAt: timestamppb.New(s.o.Now())}
	var (
		wg, nmDone                                                 sync.WaitGroup
		nmSt                                                       nm.State
		nmErr, hostErr, osErr, ifErr, dnsErr, v6Err, pkgErr, mfErr error
	)
	nmDone.Add(1)
	go func() {
		defer nmDone.Done()
		nmSt, nmErr = s.o.NM.State(ctx)
	}()
	wg.Add(2)
	go func() {
		defer wg.Done()
		st.QemuGuestAgent = s.o.QGA.State()
	}()
	go func() {
		defer wg.Done()
		st.Hostname, hostErr = s.o.OS.Hostname()
		st.Os, osErr = s.o.OS.Info()
		st.Dns, dnsErr = s.o.DNS.State()
		st.PackageManager, pkgErr = s.o.PkgConf.State()
		st.ManagedFiles, mfErr = s.o.Files.Managed()
	}()
	st.Interfaces, st.Routes, ifErr = s.o.Links.Snapshot()
	st.Ipv6, v6Err = s.o.IPv6.State(st.Interfaces, st.Routes)
	nmDone.Wait()
	var devs []nm.Device
	st.NetworkManager, devs = nmProfiles(nmSt, nmErr, st.Interfaces)
	s.stateMu.Lock()
	s.probe.prime(devs, nmErr)
	stackErr := s.o.Stack.Annotate(ctx, st.Interfaces)
	s.probe.unprime()
	s.stateMu.Unlock()
	for _, in := range st.Interfaces {
		// Unmanaged only because udev has not initialised it yet (hot-plugged moments ago): said so,
		// as Apply waits for it.
		if strings.Contains(in.GetStackDetail(), "nm_managed=false") && s.udev.Pending(in.GetName()) {
			in.StackDetail += " udev=pending"
		}
	}
	wg.Wait()
	for _, e := range []struct {
		what string
		err  error
	}{{"hostname", hostErr}, {"os", osErr}, {"interfaces", ifErr}, {"network stack", stackErr}, {"dns", dnsErr},
		{"ipv6", v6Err}, {"package manager", pkgErr}, {"managed files", mfErr}} {
		if e.err != nil {
			st.CollectionErrors = append(st.CollectionErrors, e.what+": "+e.err.Error())
		}
	}
	c := s.o.Config
	st.Config = &kvmnetv1.AgentConfig{AllowApply: c.AllowApply, ManageProfiles: c.ManageProfiles, ManageIpv6: c.ManageIPv6,
		ManagePackageManager: c.ManagePackageManager, Transports: append([]string(nil), c.Listen...),
		ManageNetplan: c.ManageNetplan, ManageNetworkd: c.ManageNetworkd, ManageIfupdown: c.ManageIfupdown}
	st.PendingCheckpoint = s.applier.Pending()
	return st, nil
}

// nmProfiles turns NetworkManager's state (or the error reading it) into the reported state,
// deciding bound_to_missing_interface against the kernel's interfaces.
func nmProfiles(st nm.State, err error, ifaces []*kvmnetv1.Interface) (*kvmnetv1.NetworkManagerState, []nm.Device) {
	out := &kvmnetv1.NetworkManagerState{}
	if err != nil {
		out.Error = err.Error()
		return out, nil
	}
	out.Running, out.Version = true, st.Status.Version
	links := make([]nm.Link, 0, len(ifaces))
	for _, in := range ifaces {
		links = append(links, nm.Link{Name: in.GetName(), MAC: in.GetMac()})
	}
	st.Profiles = slices.Clone(st.Profiles)
	nm.MarkMissing(&st, links)
	for _, p := range st.Profiles {
		out.Profiles = append(out.Profiles, &kvmnetv1.Profile{
			Id: p.ID, Uuid: p.UUID, Type: p.Type, InterfaceName: p.InterfaceName, Mac: p.MAC,
			Ipv4Method: p.IPv4Method, Ipv6Method: p.IPv6Method, Ipv4Addresses: p.IPv4Addresses,
			Active: p.Active, ActiveDevice: p.ActiveDevice, Autoconnect: p.Autoconnect,
			ManagedByKvmnet: p.ManagedByKvmnet, BoundToMissingInterface: p.BoundToMissingInterface,
			Ipv4Dns: p.IPv4DNS, Ipv4IgnoreAutoDns: p.IPv4IgnoreAutoDNS, NameConflict: nm.NameConflict(p),
		})
	}
	return out, st.Devices
}

// RunChecks runs the caller's checks.
func (s *Service) RunChecks(ctx context.Context, req *kvmnetv1.RunChecksRequest) (*kvmnetv1.RunChecksResponse, error) {
	resp, err := s.o.Checks.Run(ctx, req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return resp, nil
}

// Apply hands the plan to agent/apply. Queued behind another call it gives up with its caller; once
// it runs, the host going away (the call's cancellation) does not stop it half-way: it runs to its
// end and leaves its checkpoint pending (see agent/apply); the call's deadline still bounds it.
func (s *Service) Apply(ctx context.Context, req *kvmnetv1.ApplyRequest) (*kvmnetv1.ApplyResponse, error) {
	resp, err := s.applier.Apply(ctx, req)
	if err != nil {
		return nil, grpcError(err)
	}
	s.log.Info("apply done", "checkpoint", resp.CheckpointId, "changes", len(resp.Changes), "noop", resp.Noop, "dry_run", resp.DryRun)
	return resp, nil
}

// Confirm keeps a checkpoint's changes.
func (s *Service) Confirm(ctx context.Context, req *kvmnetv1.ConfirmRequest) (*kvmnetv1.ConfirmResponse, error) {
	if err := s.applier.Confirm(ctx, req.GetCheckpointId()); err != nil {
		return nil, grpcError(err)
	}
	return &kvmnetv1.ConfirmResponse{}, nil
}

// Rollback undoes a checkpoint's changes at once.
func (s *Service) Rollback(ctx context.Context, req *kvmnetv1.RollbackRequest) (*kvmnetv1.RollbackResponse, error) {
	restored, err := s.applier.Rollback(ctx, req.GetCheckpointId())
	if err != nil && restored == nil {
		return nil, grpcError(err)
	}
	if err != nil {
		restored = append(restored, "problems: "+err.Error())
	}
	return &kvmnetv1.RollbackResponse{Restored: restored}, nil
}

// grpcError maps agent/apply's error classes to status codes.
func grpcError(err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, apply.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, apply.ErrOptedOut):
		code = codes.PermissionDenied
	case errors.Is(err, apply.ErrPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, apply.ErrRolledBack):
		code = codes.Aborted
	case errors.Is(err, apply.ErrNoCheckpoint):
		code = codes.NotFound
	case errors.Is(err, apply.ErrNMGone), errors.Is(err, apply.ErrClosing):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

// nicLister adapts Links to apply.NICLister.
type nicLister struct{ l Links }

func (n nicLister) NICs() ([]apply.NIC, error) {
	ifaces, _, err := n.l.Snapshot()
	if err != nil {
		return nil, err
	}
	var out []apply.NIC
	for _, in := range ifaces {
		if in.GetMac() != "" {
			out = append(out, apply.NIC{Name: in.GetName(), MAC: strings.ToLower(in.GetMac())})
		}
	}
	return out, nil
}

// nmProbe adapts NetworkManager to agent/netstack's NMProbe. While GetState runs it answers from the
// devices GetState already read (prime), so a hung NetworkManager costs one call timeout, not one
// per interface.
type nmProbe struct {
	c      NetworkManager
	mu     sync.Mutex
	primed bool
	devs   []nm.Device
	err    error
}

func (p *nmProbe) prime(devs []nm.Device, err error) {
	p.mu.Lock()
	p.primed, p.devs, p.err = true, devs, err
	p.mu.Unlock()
}

func (p *nmProbe) unprime() {
	p.mu.Lock()
	p.primed, p.devs, p.err = false, nil, nil
	p.mu.Unlock()
}

func (p *nmProbe) ManagesDevice(ctx context.Context, ifname string) (bool, string, error) {
	p.mu.Lock()
	primed, devs, err := p.primed, p.devs, p.err
	p.mu.Unlock()
	if !primed {
		devs, err = p.c.Devices(ctx)
	}
	if err != nil {
		return false, "nm=unreachable", err
	}
	for _, d := range devs {
		if d.Interface == ifname {
			return d.Managed && d.State > 10, fmt.Sprintf("nm_device_state=%s nm_managed=%t", strings.TrimPrefix(d.State.String(), "NmDeviceState"), d.Managed), nil
		}
	}
	return false, "nm_device=absent", nil
}

// hub fans checkpoint events out to Watch streams.
type hub struct {
	mu   sync.Mutex
	subs map[chan *kvmnetv1.Event]struct{}
}

func newHub() *hub { return &hub{subs: map[chan *kvmnetv1.Event]struct{}{}} }

func (h *hub) subscribe() chan *kvmnetv1.Event {
	ch := make(chan *kvmnetv1.Event, 16)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *hub) unsubscribe(ch chan *kvmnetv1.Event) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

func (h *hub) publish(ev *kvmnetv1.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default: // a slow watcher loses checkpoint events rather than blocking Apply
		}
	}
}

// Watch streams link/address events, NetworkManager signals and checkpoint events until the client
// goes away. It is event-driven: no timer runs while nothing happens.
func (s *Service) Watch(_ *kvmnetv1.WatchRequest, stream kvmnetv1.Agent_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	links, err := s.o.Links.Watch(ctx)
	if err != nil {
		return status.Errorf(codes.Unavailable, "watch links: %v", err)
	}
	cps := s.hub.subscribe()
	defer s.hub.unsubscribe(cps)
	nmEvents, nmErr := s.o.NM.Subscribe(ctx)
	if nmErr != nil {
		s.log.Warn("watch without NetworkManager events", "err", nmErr)
		ev := &kvmnetv1.Event{Time: timestamppb.New(s.o.Now()), Kind: kvmnetv1.EventKind_EVENT_KIND_NETWORK_MANAGER,
			Summary: "NetworkManager events unavailable: " + nmErr.Error()}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	for {
		var ev *kvmnetv1.Event
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-links:
			if !ok {
				if ctx.Err() != nil { // the client went away: the subscription ended because of it
					return nil
				}
				return status.Error(codes.Unavailable, "link event subscription ended")
			}
			ev = e
		case e, ok := <-nmEvents:
			if !ok {
				nmEvents = nil // bus connection lost: keep streaming link events
				ev = &kvmnetv1.Event{Kind: kvmnetv1.EventKind_EVENT_KIND_NETWORK_MANAGER, Summary: "NetworkManager event subscription ended (bus connection lost)"}
				break
			}
			kind := kvmnetv1.EventKind_EVENT_KIND_NETWORK_MANAGER
			if e.Kind == nm.EventProfile {
				kind = kvmnetv1.EventKind_EVENT_KIND_PROFILE
			}
			ev = &kvmnetv1.Event{Kind: kind, Interface: e.Interface, Summary: e.Summary}
		case e := <-cps:
			ev = e
		}
		if ev.Time == nil {
			ev.Time = timestamppb.New(s.o.Now())
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
}
