package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kvmnet/kvmnet/controller/channel"
	"github.com/kvmnet/kvmnet/controller/channel/libvirtdomains"
	"github.com/kvmnet/kvmnet/controller/libvirt"
	"github.com/kvmnet/kvmnet/controller/output"
)

func newGuestsEnableChannelCmd(g *Globals) *cobra.Command {
	var o channel.EnableOptions
	var qemuConf string
	cmd := &cobra.Command{
		Use:   "enable-channel VM",
		Short: "Give a domain the kvmnet virtio-serial channel (and optionally vsock), reachable by root only",
		Long: "enable-channel adds <channel type='unix'> with target org.kvmnet.agent.0 to the domain's persistent\n" +
			"XML, its socket in " + channel.DefaultDir + " (mode 0700, owned by the user QEMU runs as, read from\n" +
			"qemu.conf or the running QEMU: no other host user can reach the guest agent). An existing kvmnet\n" +
			"channel elsewhere is moved there. It prints the XML diff. A shut-off domain gets it at its next start;\n" +
			"a running one gets a new channel hot-plugged when libvirt allows it, otherwise after it is shut down\n" +
			"and started again. --vsock also adds <vsock model='virtio'><cid auto='yes'/></vsock>. Running it\n" +
			"again changes nothing.",
		Example: "  kvmnetctl guests enable-channel web1\n  kvmnetctl guests enable-channel web1 --vsock --dry-run",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := g.Renderer()
			ctx, cancel := g.Context(cmd.Context())
			defer cancel()
			src, err := libvirt.Open(ctx, g.Connect, g.Getenv)
			if err != nil {
				return Unreachable(err)
			}
			defer src.Close()
			if src.Session() {
				return Usage(fmt.Errorf("%s is a per-user session: QEMU runs as you there, so enable-channel "+
					"(which manages qemu:///system guests) does not apply; add the channel with `virsh edit %s` and "+
					"a socket path under your home directory", src.URI(), args[0]))
			}
			if !src.Remote() {
				o.Prepare = channel.LocalPreparer(channel.LocalOptions{QEMUConf: qemuConf})
			}
			res, err := channel.Enable(ctx, libvirtdomains.Adapter{Src: src}, args[0], o)
			if err != nil {
				return Failed(err)
			}
			if r.Format() != output.FormatTable {
				return r.Render(res)
			}
			return writeChannelResult(g, res)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Vsock, "vsock", false, "also add a vsock device with an automatic CID")
	f.BoolVar(&o.DryRun, "dry-run", false, "show the XML diff without changing anything")
	f.StringVar(&o.Dir, "dir", channel.DefaultDir, "directory for the channel sockets (must be traversable by QEMU's user only)")
	f.StringVar(&qemuConf, "qemu-conf", "/etc/libvirt/qemu.conf", "libvirt's qemu.conf, read to find the user QEMU runs as")
	return cmd
}

// writeChannelResult prints a channel.Result for people: the diff, what was done to the directory and
// when the change takes effect.
func writeChannelResult(g *Globals, res channel.Result) error {
	var b strings.Builder
	if res.Diff != "" {
		b.WriteString(res.Diff)
		b.WriteString("\n")
	}
	if res.Dir != nil {
		acts := "already in place"
		if len(res.Dir.Actions) > 0 {
			acts = strings.Join(res.Dir.Actions, ", ")
		}
		fmt.Fprintf(&b, "channel directory %s (0700 %s:%s): %s\n", res.Dir.Dir, res.Dir.Owner, res.Dir.Group, acts)
	}
	b.WriteString(res.Message)
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = output.Sanitize(l)
	}
	_, err := fmt.Fprintln(g.Stdout, strings.Join(lines, "\n"))
	return err
}
