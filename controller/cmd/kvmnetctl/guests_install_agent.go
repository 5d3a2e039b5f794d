package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvmnet/kvmnet/controller/agentclient"
	"github.com/kvmnet/kvmnet/controller/channel"
	"github.com/kvmnet/kvmnet/controller/channel/libvirtdomains"
	"github.com/kvmnet/kvmnet/controller/collect"
	"github.com/kvmnet/kvmnet/controller/install"
	"github.com/kvmnet/kvmnet/controller/libvirt"
	"github.com/kvmnet/kvmnet/controller/output"
	"github.com/kvmnet/kvmnet/controller/qga"
	"github.com/kvmnet/kvmnet/controller/snapshot"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

func newGuestsInstallAgentCmd(g *Globals) *cobra.Command {
	var (
		o        install.Options
		qemuConf string
	)
	cmd := &cobra.Command{
		Use:   "install-agent VM",
		Short: "Install kvmnet-agent into a guest through qemu-guest-agent (no network or login needed in the guest)",
		Long: `install-agent puts kvmnet-agent into a running guest that has qemu-guest-agent but no kvmnet agent,
without network access or a login in the guest.

It checks that the domain runs, that its qemu-guest-agent channel answers guest-ping, that qemu-ga
allows guest-exec and guest-file-* (RHEL blocks them by default: the error names the line to change),
and reads the guest's OS family (deb or rpm) and architecture (amd64 or arm64) from guest-get-osinfo.
It takes the matching package from ` + install.DefaultPackageDir + ` (shipped with kvmnetctl) or --package,
uploads it in chunks through qemu-guest-agent, checks its sha256 inside the guest before anything is
installed (a mismatch installs nothing), installs it with dpkg -i or rpm -U, adds the org.kvmnet.agent.0
channel live and persistent (as enable-channel does), waits until the agent answers, and prints
guests status for the guest. An agent that already answers with the package's version: nothing to do.`,
		Example: "  kvmnetctl guests install-agent web1\n  kvmnetctl guests install-agent web1 --dry-run\n" +
			"  kvmnetctl guests install-agent web1 --yes --package ./kvmnet-agent_1.2.0_arm64.deb\n" +
			"  kvmnetctl guests install-agent web1 --yes --upgrade",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fio, err := newFixIO(g, os.Stdin, o.Yes, o.DryRun)
			if err != nil {
				return err
			}
			rend := g.Renderer()
			o.Confirm = fio.confirm
			return runInstallAgent(cmd.Context(), g, fio.human, rend, args[0], o, qemuConf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Package, "package", "", "agent package (.deb or .rpm) to install instead of the shipped one for the guest's OS and arch")
	f.StringVar(&o.PackageDir, "package-dir", install.DefaultPackageDir, "directory holding the shipped agent packages")
	f.BoolVar(&o.DryRun, "dry-run", false, "check the preconditions and name the package; change nothing")
	f.BoolVarP(&o.Yes, "yes", "y", false, "install without asking")
	f.BoolVar(&o.Upgrade, "upgrade", false, "replace an answering agent whose version differs from the package's")
	f.DurationVar(&o.WaitAgent, "wait", 2*time.Minute, "how long to wait for the new agent's first answer")
	f.StringVar(&qemuConf, "qemu-conf", "/etc/libvirt/qemu.conf", "libvirt's qemu.conf, read to find the user QEMU runs as (channel directory owner)")
	f.IntVar(&o.ChunkSize, "chunk-size", install.DefaultChunkSize, "bytes per guest-file-write")
	_ = f.MarkHidden("chunk-size")
	f.BoolVar(&o.CorruptUpload, "test-corrupt-upload", false, "test seam: corrupt the uploaded copy to exercise the sha256 check")
	_ = f.MarkHidden("test-corrupt-upload")
	return cmd
}

// runInstallAgent wires controller/install to libvirt, qemu-guest-agent, enable-channel and the agent
// client, runs it, and prints guests status for the domain after an installation.
func runInstallAgent(ctx context.Context, g *Globals, human io.Writer, rend *output.Renderer, vm string, o install.Options, qemuConf string) error {
	if g.Timeout <= 0 {
		g.Timeout = collect.DefaultTimeout
	}
	src, err := libvirt.Open(ctx, g.Connect, g.Getenv)
	if err != nil {
		return Unreachable(err)
	}
	defer src.Close()
	if src.Session() {
		return Usage(fmt.Errorf("%s is a per-user session: install-agent manages qemu:///system guests (it adds the kvmnet channel as enable-channel does)", src.URI()))
	}
	host := &installHost{g: g, src: src}
	if !src.Remote() {
		host.prepare = channel.LocalPreparer(channel.LocalOptions{QEMUConf: qemuConf})
	}
	tty := output.IsTerminal(human)
	o.Progress = progressBar(human, tty)
	res, err := install.New(host, qga.NewClient(src, vm, g.Timeout), vm, o).Install(ctx)
	if o.Progress != nil && res.UploadMS > 0 && tty {
		fmt.Fprintln(human)
	}
	if g.Format.Structured() {
		if rerr := rend.Render(res); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		if errors.Is(err, install.ErrPrecondition) || errors.Is(err, install.ErrNothingInstalled) {
			return Failed(fmt.Errorf("%w (nothing was installed)", err))
		}
		return Failed(err)
	}
	fmt.Fprintln(human, res.Message)
	if res.Channel != "" {
		fmt.Fprintln(human, res.Channel)
	}
	if res.Action != install.ActionInstalled || g.Format.Structured() {
		return nil
	}
	fmt.Fprintln(human)
	sctx, cancel := withDeadline(ctx, g)
	defer cancel()
	var cf collectFlags
	_, r, err := collectReport(sctx, g, cf.options(g, true, []string{vm}))
	if err != nil {
		return err
	}
	// The installation succeeded: the guest's own findings (its network may still be broken: that is
	// what guests fix is for now) do not change the exit status.
	return output.WriteStatus(g.Stdout, r, rend.Palette(), rend.Format() == output.FormatWide)
}

// progressBar draws the upload's progress: a bar redrawn in place on a terminal, a line per 25%
// otherwise (logs stay short).
func progressBar(w io.Writer, tty bool) func(done, total int64) {
	last := int64(-1)
	start := time.Now()
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		pct := done * 100 / total
		mbps := float64(done) / 1e6 / max(time.Since(start).Seconds(), 1e-3)
		if tty {
			n := int(pct / 5)
			fmt.Fprintf(w, "\rupload [%s%s] %3d%% %.1f/%.1f MB %.2f MB/s", strings.Repeat("#", n), strings.Repeat(".", 20-n),
				pct, float64(done)/1e6, float64(total)/1e6, mbps)
			return
		}
		if q := pct / 25; q != last {
			last = q
			fmt.Fprintf(w, "upload %3d%% (%d/%d bytes, %.2f MB/s)\n", pct, done, total, mbps)
		}
	}
}

// installHost is install.Host on a libvirt connection.
type installHost struct {
	g       *Globals
	src     *libvirt.Source
	prepare channel.PrepareFunc
}

func (h *installHost) Domain(ctx context.Context, name string) (install.DomainInfo, error) {
	d, err := h.src.Domain(ctx, name)
	if err != nil {
		return install.DomainInfo{}, err
	}
	_, qgaCh := d.Channel(snapshot.ChannelQemuGA)
	return install.DomainInfo{State: d.State, QGAChannel: qgaCh}, nil
}

// AgentVersion dials the domain's kvmnet agent (vsock, then the channel) and asks GetState, each try
// bounded by a few seconds so a missing agent is found quickly.
func (h *installHost) AgentVersion(ctx context.Context, name string) (string, error) {
	d, err := h.src.Domain(ctx, name)
	if err != nil {
		return "", err
	}
	eps := collect.Endpoints(d)
	if len(eps) == 0 {
		return "", errors.New("no kvmnet channel or vsock device")
	}
	var errs []error
	for _, ep := range eps {
		tctx, cancel := context.WithTimeout(ctx, min(h.g.Timeout, 5*time.Second))
		v, err := func() (string, error) {
			c, err := agentclient.DialAddr(tctx, ep.Addr, agentclient.WithDialTimeout(min(h.g.Timeout, 5*time.Second)))
			if err != nil {
				return "", err
			}
			defer c.Close()
			st, err := c.GetState(tctx, &kvmnetv1.GetStateRequest{})
			if err != nil {
				return "", err
			}
			return qga.Text(st.GetAgentVersion(), qga.MaxTextLen), nil
		}()
		cancel()
		if err == nil {
			return v, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep.Addr, err))
	}
	return "", errors.Join(errs...)
}

func (h *installHost) EnableChannel(ctx context.Context, name string) (string, error) {
	res, err := channel.Enable(ctx, libvirtdomains.Adapter{Src: h.src}, name, channel.EnableOptions{Prepare: h.prepare})
	if err != nil {
		return "", err
	}
	if res.Live == channel.LiveNextBoot {
		return res.Message, fmt.Errorf("the running domain did not take the channel live: %s", res.Message)
	}
	return res.Message, nil
}
