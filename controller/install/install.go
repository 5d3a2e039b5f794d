package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kvmnet/kvmnet/controller/qga"
)

// Guest is the qemu-guest-agent surface the installer uses; *qga.Client satisfies it.
type Guest interface {
	Ping(ctx context.Context) error
	Info(ctx context.Context) (qga.Info, error)
	OSInfo(ctx context.Context) (qga.OSInfo, error)
	FileOpen(ctx context.Context, path, mode string) (int64, error)
	FileWrite(ctx context.Context, handle int64, data []byte) error
	FileClose(ctx context.Context, handle int64) error
	Run(ctx context.Context, path string, args ...string) (qga.ExecStatus, error)
}

// DomainInfo is what the installer needs to know about the domain from libvirt.
type DomainInfo struct {
	// State as virsh names it ("running", "shut off", ...).
	State string
	// QGAChannel is true when the domain has an org.qemu.guest_agent.0 channel.
	QGAChannel bool
}

// Host is the host side: libvirt, the channel change (controller/channel) and the kvmnet agent client.
type Host interface {
	// Domain reads the domain's state and channels.
	Domain(ctx context.Context, name string) (DomainInfo, error)
	// AgentVersion asks the domain's kvmnet agent for GetState and returns its agent_version; an error
	// when no kvmnet agent answers (no channel, not installed, not started yet).
	AgentVersion(ctx context.Context, name string) (string, error)
	// EnableChannel gives the domain the org.kvmnet.agent.0 channel, persistent and (when running)
	// hot-plugged, and says what it did.
	EnableChannel(ctx context.Context, name string) (string, error)
}

// Options configure Install.
type Options struct {
	// Package is --package FILE ("" = choose from PackageDir).
	Package string
	// PackageDir holds the shipped agent packages (default DefaultPackageDir).
	PackageDir string
	// DryRun checks the preconditions and names the package, changing nothing.
	DryRun bool
	// Yes installs without asking.
	Yes bool
	// Upgrade replaces an answering agent whose version differs from the package's.
	Upgrade bool
	// Confirm asks before installing unless Yes; nil with Yes false is an error.
	Confirm func(plan string) (bool, error)
	// Progress is told the bytes uploaded so far (may be nil).
	Progress func(done, total int64)
	// ChunkSize of each guest-file-write (default DefaultChunkSize).
	ChunkSize int
	// InstallTimeout bounds dpkg/rpm in the guest (default 3 min).
	InstallTimeout time.Duration
	// WaitAgent bounds the wait for the agent's first answer after the channel is added (default 2 min).
	WaitAgent time.Duration
	// CorruptUpload flips one byte of the uploaded copy (test seam for the sha256 check; the host's
	// checksum stays that of the real file).
	CorruptUpload bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Actions a Result reports.
const (
	ActionInstalled = "installed"
	ActionNone      = "none"
	ActionDryRun    = "dry-run"
)

// Result is what Install did, with the timings of each phase.
type Result struct {
	// Domain installed into.
	Domain string `json:"domain"`
	// Action: installed, none (already current, or an other version without --upgrade), dry-run.
	Action string `json:"action"`
	// Message says, for people, what happened.
	Message string `json:"message"`
	// OS is the guest's PRETTY_NAME; Target its package format and arch.
	OS string `json:"os,omitempty"`
	// Target chosen from guest-get-osinfo.
	Target Target `json:"target"`
	// Package uploaded (or that would be).
	Package *Package `json:"package,omitempty"`
	// PreviousVersion of an answering agent ("" when none answered).
	PreviousVersion string `json:"previous_version,omitempty"`
	// InstalledVersion as the guest's package manager reports it afterwards.
	InstalledVersion string `json:"installed_version,omitempty"`
	// AgentVersion as the new agent reports it in GetState.
	AgentVersion string `json:"agent_version,omitempty"`
	// Channel says what enable-channel did.
	Channel string `json:"channel,omitempty"`
	// GuestPath is where the package was uploaded in the guest.
	GuestPath string `json:"guest_path,omitempty"`
	// UploadMS, InstallMS, ChannelMS, FirstAnswerMS time each phase.
	UploadMS      int64 `json:"upload_ms,omitempty"`
	InstallMS     int64 `json:"install_ms,omitempty"`
	ChannelMS     int64 `json:"channel_ms,omitempty"`
	FirstAnswerMS int64 `json:"first_answer_ms,omitempty"`
	// UploadMBps is the upload throughput in MB/s (10^6 bytes).
	UploadMBps float64 `json:"upload_mbps,omitempty"`
	// Evidence, key=value words.
	Evidence []string `json:"evidence"`
}

// ErrPrecondition is wrapped by every error raised before anything was uploaded.
var ErrPrecondition = errors.New("precondition failed")

// ErrNothingInstalled is wrapped by errors after the upload started but before dpkg/rpm ran: the
// guest is unchanged (the uploaded file is removed).
var ErrNothingInstalled = errors.New("nothing installed")

// Needed are the qemu-guest-agent commands the installer uses beyond guest-ping/guest-info.
var Needed = []string{"guest-get-osinfo", "guest-file-open", "guest-file-write", "guest-file-close", "guest-exec", "guest-exec-status"}

// GuestDir is where the package is uploaded in the guest (survives no reboot on most systems, is
// writable by root, and is not a tmpfs that may be too small for 5 MB on tiny guests).
const GuestDir = "/var/tmp"

// DefaultChunkSize is the data per guest-file-write: 48 KiB (64 KiB base64) moved 4 MiB in 5 s into a
// TCG guest; one 256 KiB write did not finish within 20 s there under load.
const DefaultChunkSize = 48 << 10

// Installer installs the agent into one domain.
type Installer struct {
	host   Host
	guest  Guest
	domain string
	o      Options
}

// New returns an Installer for domain.
func New(host Host, guest Guest, domain string, o Options) *Installer {
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.InstallTimeout <= 0 {
		o.InstallTimeout = 3 * time.Minute
	}
	if o.WaitAgent <= 0 {
		o.WaitAgent = 2 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Installer{host: host, guest: guest, domain: domain, o: o}
}

func (in *Installer) pre(format string, a ...any) error {
	return fmt.Errorf("install-agent %s: %w: %s", in.domain, ErrPrecondition, fmt.Sprintf(format, a...))
}

// Install runs the whole procedure. Every error before the upload wraps ErrPrecondition, every error
// after it and before dpkg/rpm wraps ErrNothingInstalled.
func (in *Installer) Install(ctx context.Context) (Result, error) {
	res := Result{Domain: in.domain, Evidence: []string{}}
	d := in.domain
	info, err := in.host.Domain(ctx, d)
	if err != nil {
		return res, in.pre("%v", err)
	}
	res.Evidence = append(res.Evidence, "state="+strings.ReplaceAll(info.State, " ", "-"), fmt.Sprintf("qga_channel=%t", info.QGAChannel))
	if info.State != "running" {
		return res, in.pre("the domain is %s: start it (virsh start %s) and run install-agent again; the agent is installed through qemu-guest-agent, which needs the guest running", info.State, d)
	}
	if !info.QGAChannel {
		return res, in.pre("the domain has no qemu-guest-agent channel: add <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel> (virsh edit %s), "+
			"restart the domain, install qemu-guest-agent in the guest, then run install-agent again (or install kvmnet-agent by hand and run kvmnetctl guests enable-channel %s)", d, d)
	}

	// Already there? Probe the kvmnet agent first: nothing else is needed when it is current.
	prev, agentErr := in.host.AgentVersion(ctx, d)
	if agentErr == nil {
		res.PreviousVersion = prev
		res.Evidence = append(res.Evidence, "agent_answers=yes", "agent_version="+prev)
	} else {
		res.Evidence = append(res.Evidence, "agent_answers=no")
	}

	if err := in.guest.Ping(ctx); err != nil {
		return res, in.pre("qemu-guest-agent does not answer guest-ping (%s): install qemu-guest-agent in the guest and check that it runs (systemctl status qemu-guest-agent)", qga.Describe(err))
	}
	gi, err := in.guest.Info(ctx)
	if err != nil {
		return res, in.pre("guest-info: %v", err)
	}
	res.Evidence = append(res.Evidence, "qga_version="+gi.Version)
	var blocked []string
	for _, c := range Needed {
		if !gi.Enabled[c] {
			blocked = append(blocked, c)
		}
	}
	if len(blocked) > 0 {
		return res, in.pre("qemu-guest-agent in %s does not allow %s. Allow them in the guest and restart it (systemctl restart qemu-guest-agent): "+
			"on RHEL/CentOS/Fedora add them to --allow-rpcs in FILTER_RPC_ARGS of /etc/sysconfig/qemu-ga (or drop them from --block-rpcs / BLACKLIST_RPC there); "+
			"elsewhere remove them from block-rpcs= in /etc/qemu/qemu-ga.conf or from qemu-ga's --block-rpcs option",
			d, strings.Join(blocked, ", "))
	}
	osi, err := in.guest.OSInfo(ctx)
	if err != nil {
		return res, in.pre("guest-get-osinfo: %v", err)
	}
	res.OS = osi.PrettyName
	res.Evidence = append(res.Evidence, "os_id="+orUnknown(osi.ID), "machine="+orUnknown(osi.Machine))
	t, err := TargetFor(osi.ID, osi.Machine)
	if err != nil {
		return res, fmt.Errorf("install-agent %s: %w: %w", d, ErrPrecondition, err)
	}
	res.Target = t
	pkg, err := Choose(t, in.o.Package, in.o.PackageDir)
	if err != nil {
		return res, in.pre("%v", err)
	}
	res.Package = &pkg
	res.GuestPath = GuestDir + "/kvmnet-agent-install." + string(t.Family)
	res.Evidence = append(res.Evidence, "target="+t.String(), "package="+pkg.Path, "sha256="+pkg.SHA256)

	if agentErr == nil {
		current := pkg.Version != "" && PackageVersion(prev) == pkg.Version
		switch {
		case current:
			res.Action = ActionNone
			res.Message = fmt.Sprintf("kvmnet-agent %s already answers in %s and is the version of %s: nothing to do", prev, d, pkg.Path)
			return res, nil
		case !in.o.Upgrade:
			res.Action = ActionNone
			res.Message = fmt.Sprintf("kvmnet-agent %s already answers in %s; the package is %s: nothing changed (pass --upgrade to replace it)",
				prev, d, orUnknown(pkg.Version))
			return res, nil
		}
	}
	plan := fmt.Sprintf("upload %s (%s, %d bytes, sha256 %s) to %s:%s through qemu-guest-agent, install it with %s, add the %s channel",
		pkg.Path, t, pkg.Size, pkg.SHA256[:16], d, res.GuestPath, installCmd(t.Family, res.GuestPath), "org.kvmnet.agent.0")
	if in.o.DryRun {
		res.Action = ActionDryRun
		res.Message = "dry run: would " + plan
		return res, nil
	}
	if !in.o.Yes {
		if in.o.Confirm == nil {
			return res, in.pre("not confirmed: pass --yes to install without asking")
		}
		ok, err := in.o.Confirm(plan)
		if err != nil {
			return res, in.pre("confirmation: %v", err)
		}
		if !ok {
			return res, in.pre("declined: nothing changed")
		}
	}

	if err := in.upload(ctx, &res, pkg); err != nil {
		in.remove(ctx, res.GuestPath)
		return res, err
	}
	if err := in.verify(ctx, &res, pkg, t); err != nil {
		in.remove(ctx, res.GuestPath)
		return res, err
	}
	if err := in.install(ctx, &res, t); err != nil {
		in.remove(ctx, res.GuestPath)
		return res, err
	}
	in.remove(ctx, res.GuestPath)

	t0 := in.o.Now()
	msg, err := in.host.EnableChannel(ctx, d)
	res.ChannelMS = in.o.Now().Sub(t0).Milliseconds()
	res.Channel = msg
	if err != nil {
		return res, fmt.Errorf("install-agent %s: kvmnet-agent %s is installed but adding its channel failed: %w (run kvmnetctl guests enable-channel %s)",
			d, res.InstalledVersion, err, d)
	}
	if err := in.waitAgent(ctx, &res); err != nil {
		return res, err
	}
	res.Action = ActionInstalled
	res.Message = fmt.Sprintf("kvmnet-agent %s installed in %s and answering (upload %.2f MB/s, install %s, channel %s, first answer %s)",
		res.InstalledVersion, d, res.UploadMBps, ms(res.InstallMS), ms(res.ChannelMS), ms(res.FirstAnswerMS))
	return res, nil
}

func ms(n int64) string { return (time.Duration(n) * time.Millisecond).String() }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func installCmd(f Family, path string) string {
	if f == FamilyDeb {
		return "dpkg -i " + path
	}
	return "rpm -U " + path
}

// upload writes the package to the guest in chunks.
func (in *Installer) upload(ctx context.Context, res *Result, pkg Package) error {
	data, err := os.ReadFile(pkg.Path)
	if err != nil {
		return fmt.Errorf("install-agent %s: %w: read %s: %v", in.domain, ErrNothingInstalled, pkg.Path, err)
	}
	if in.o.CorruptUpload {
		data = slices.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	t0 := in.o.Now()
	h, err := in.guest.FileOpen(ctx, res.GuestPath, "w")
	if err != nil {
		return fmt.Errorf("install-agent %s: %w: open %s in the guest: %v", in.domain, ErrNothingInstalled, res.GuestPath, err)
	}
	total := int64(len(data))
	for off := 0; off < len(data); off += in.o.ChunkSize {
		end := min(off+in.o.ChunkSize, len(data))
		if err := in.guest.FileWrite(ctx, h, data[off:end]); err != nil {
			_ = in.guest.FileClose(ctx, h)
			return fmt.Errorf("install-agent %s: %w: upload to %s at byte %d: %v", in.domain, ErrNothingInstalled, res.GuestPath, off, err)
		}
		if in.o.Progress != nil {
			in.o.Progress(int64(end), total)
		}
	}
	if err := in.guest.FileClose(ctx, h); err != nil {
		return fmt.Errorf("install-agent %s: %w: close %s in the guest: %v", in.domain, ErrNothingInstalled, res.GuestPath, err)
	}
	took := in.o.Now().Sub(t0)
	res.UploadMS = took.Milliseconds()
	if took > 0 {
		res.UploadMBps = float64(total) / 1e6 / took.Seconds()
	}
	return nil
}

var hexSum = regexp.MustCompile(`^[0-9a-f]{64}$`)

// verify checks the uploaded copy's sha256 and the package's own metadata inside the guest.
func (in *Installer) verify(ctx context.Context, res *Result, pkg Package, t Target) error {
	st, err := in.guest.Run(ctx, "sha256sum", res.GuestPath)
	if err != nil || st.ExitCode != 0 {
		return fmt.Errorf("install-agent %s: %w: sha256sum %s in the guest failed%s", in.domain, ErrNothingInstalled, res.GuestPath, why(err, st))
	}
	sum, _, _ := strings.Cut(qga.FirstLine(st.Stdout), " ")
	if !hexSum.MatchString(sum) {
		return fmt.Errorf("install-agent %s: %w: sha256sum in the guest printed no checksum", in.domain, ErrNothingInstalled)
	}
	res.Evidence = append(res.Evidence, "guest_sha256="+sum)
	if sum != pkg.SHA256 {
		return fmt.Errorf("install-agent %s: %w: the uploaded copy is corrupted: sha256 in the guest %s, on the host %s; run install-agent again",
			in.domain, ErrNothingInstalled, sum, pkg.SHA256)
	}
	var name, arch string
	if t.Family == FamilyDeb {
		st, err = in.guest.Run(ctx, "dpkg-deb", "--showformat=${Package} ${Architecture}\n", "--show", res.GuestPath)
	} else {
		st, err = in.guest.Run(ctx, "rpm", "-qp", "--qf", "%{NAME} %{ARCH}\n", res.GuestPath)
	}
	if err != nil || st.ExitCode != 0 {
		return fmt.Errorf("install-agent %s: %w: the guest cannot read the package %s%s", in.domain, ErrNothingInstalled, pkg.Path, why(err, st))
	}
	name, arch, _ = strings.Cut(qga.FirstLine(st.Stdout), " ")
	want := t.Arch
	if t.Family == FamilyRPM {
		want = rpmArch(t.Arch)
	}
	res.Evidence = append(res.Evidence, "package_name="+name, "package_arch="+arch)
	if name != "kvmnet-agent" {
		return fmt.Errorf("install-agent %s: %w: %s is the package %q, not kvmnet-agent", in.domain, ErrNothingInstalled, pkg.Path, name)
	}
	if arch != want {
		return fmt.Errorf("install-agent %s: %w: %s is built for %s but the guest is %s: pass the %s package", in.domain, ErrNothingInstalled, pkg.Path, arch, want, want)
	}
	return nil
}

// install runs dpkg/rpm in the guest and reads back the installed version.
func (in *Installer) install(ctx context.Context, res *Result, t Target) error {
	ictx, cancel := context.WithTimeout(ctx, in.o.InstallTimeout)
	defer cancel()
	t0 := in.o.Now()
	var st qga.ExecStatus
	var err error
	if t.Family == FamilyDeb {
		// No terminal to ask on: keep changed conffiles (agent.yaml) as the user edited them.
		st, err = in.guest.Run(ictx, "dpkg", "--force-confdef", "--force-confold", "-i", res.GuestPath)
	} else {
		st, err = in.guest.Run(ictx, "rpm", "-U", "--replacepkgs", res.GuestPath)
	}
	res.InstallMS = in.o.Now().Sub(t0).Milliseconds()
	if err != nil {
		return fmt.Errorf("install-agent %s: %s in the guest: %w", in.domain, installCmd(t.Family, res.GuestPath), err)
	}
	if st.ExitCode != 0 {
		return fmt.Errorf("install-agent %s: %s in the guest failed (exit %d)%s", in.domain, installCmd(t.Family, res.GuestPath), st.ExitCode, stderrOf(st))
	}
	if t.Family == FamilyDeb {
		st, err = in.guest.Run(ctx, "dpkg-query", "--showformat=${Version}\n", "--show", "kvmnet-agent")
	} else {
		st, err = in.guest.Run(ctx, "rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\n", "kvmnet-agent")
	}
	if err == nil && st.ExitCode == 0 {
		res.InstalledVersion = qga.FirstLine(st.Stdout)
	}
	res.Evidence = append(res.Evidence, "installed_version="+orUnknown(res.InstalledVersion))
	return nil
}

func (in *Installer) remove(ctx context.Context, path string) {
	_, _ = in.guest.Run(ctx, "rm", "-f", path)
}

// waitAgent polls GetState until the new agent answers, bounded by WaitAgent.
func (in *Installer) waitAgent(ctx context.Context, res *Result) error {
	wctx, cancel := context.WithTimeout(ctx, in.o.WaitAgent)
	defer cancel()
	t0 := in.o.Now()
	var last error
	for {
		v, err := in.host.AgentVersion(wctx, in.domain)
		if err == nil {
			res.FirstAnswerMS = in.o.Now().Sub(t0).Milliseconds()
			res.AgentVersion = v
			res.Evidence = append(res.Evidence, "agent_version="+v)
			return nil
		}
		last = err
		select {
		case <-wctx.Done():
			return fmt.Errorf("install-agent %s: kvmnet-agent %s is installed and the channel added, but the agent did not answer within %s: %v "+
				"(check in the guest: systemctl status kvmnet-agent; ls /dev/virtio-ports/)", in.domain, res.InstalledVersion, in.o.WaitAgent, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// why describes a failed guest command: the transport error, or its exit code and stderr.
func why(err error, st qga.ExecStatus) string {
	if err != nil {
		return ": " + err.Error()
	}
	return fmt.Sprintf(" (exit %d)%s", st.ExitCode, stderrOf(st))
}

func stderrOf(st qga.ExecStatus) string {
	if len(st.Stderr) == 0 {
		return ""
	}
	return ": " + qga.Text(strings.ReplaceAll(string(st.Stderr), "\n", " | "), 4*qga.MaxTextLen)
}

var pkgVersionJunk = regexp.MustCompile(`[^A-Za-z0-9.+~]`)

// PackageVersion turns an agent's reported version (git describe) into its package version, the way
// packaging/build.sh's pkg_version does: v1.2.0-5-gabc123-dirty -> 1.2.0+5.gabc123.dirty; an
// untagged abc123-dirty -> 0.0.0+git.abc123.dirty.
func PackageVersion(raw string) string {
	v := strings.TrimPrefix(raw, "v")
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+`).MatchString(v) {
		v = "0.0.0+git." + v
	} else if i := strings.IndexByte(v, '-'); i >= 0 {
		v = v[:i] + "+" + v[i+1:]
	}
	v = strings.ReplaceAll(v, "-", ".")
	return pkgVersionJunk.ReplaceAllString(v, ".")
}
