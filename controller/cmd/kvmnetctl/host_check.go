package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/controller/output"
)

func newHostCheckCmd(g *Globals) *cobra.Command {
	var cf collectFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check libvirt networks, bridges, forwarding and the firewall's verdicts for guest traffic",
		Long: "check reads libvirt's networks and leases, the host's bridges and net.ipv4.ip_forward, and the\n" +
			"firewall (iptables-nft, iptables-legacy, nftables, UFW, Docker, firewalld), evaluates whether a new\n" +
			"guest TCP flow to the uplink, DHCP and DNS would be accepted and which rule decides, and names the\n" +
			"root cause with a fix. Each network is judged by its kind: an isolated network needs no way out, a\n" +
			"routed one no MASQUERADE, a bridged one gets its addresses from the LAN. Agent channel sockets that\n" +
			"non-root users can reach are reported too (channel_socket_exposed).\n\n" +
			"Exit status: 0 no error-level finding, 1 any, 2 usage or connection error.",
		Example: "  kvmnetctl host check\n  kvmnetctl host check -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rend := g.Renderer()
			ctx, cancel := withDeadline(cmd.Context(), g)
			defer cancel()
			// Guests are read for channel exposure and report-only mode, not checked.
			_, r, err := collectReport(ctx, g, cf.options(g, false, nil))
			if err != nil {
				return err
			}
			if !rend.Format().Structured() {
				err = output.WriteHostCheck(g.Stdout, r, rend.Palette())
			} else {
				err = rend.Render(r)
			}
			if err != nil {
				return err
			}
			if fs := r.HostFindings(); diagnose.HasErrors(fs) {
				n := 0
				for _, f := range fs {
					if f.Severity == diagnose.SeverityError {
						n++
					}
				}
				return Failed(fmt.Errorf("%s on the host", output.Plural(n, "error-level finding", "error-level findings")))
			}
			return nil
		},
	}
	cf.register(cmd.Flags(), false)
	return cmd
}
