package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kvmnet/kvmnet/controller/output"
)

func newGuestsStatusCmd(g *Globals) *cobra.Command {
	var cf collectFlags
	cmd := &cobra.Command{
		Use:   "status [VM...]",
		Short: "One line per guest NIC: the guest's view next to the host's (lease, bridge, firewall), with findings",
		Long: "status queries every running guest's kvmnet agent concurrently (each within --timeout, so one hung\n" +
			"guest never delays the others), runs connectivity checks in the guests (gateway ping, DNS through\n" +
			"the guest's resolver, TCP to the bridge's dnsmasq and beyond; IPv6 variants when the guest has IPv6),\n" +
			"and correlates the guest's interfaces (matched by MAC) with libvirt's leases, the bridge, and the\n" +
			"host firewall's verdicts. Guests without an agent still show what the host alone can tell.\n\n" +
			"Exit status: 0 all listed guests healthy, 1 any guest has an error-level finding (its own or its\n" +
			"network's), 2 usage or connection error. -o json prints the contract documented in the README.",
		Example: "  kvmnetctl guests status\n  kvmnetctl guests status web1 db1 -o json\n" +
			"  kvmnetctl guests status --check-target 203.0.113.1:443 --check-url http://deb.debian.org/",
		RunE: func(cmd *cobra.Command, args []string) error {
			rend := g.Renderer()
			ctx, cancel := withDeadline(cmd.Context(), g)
			defer cancel()
			_, r, err := collectReport(ctx, g, cf.options(g, true, args))
			if err != nil {
				return err
			}
			if !rend.Format().Structured() {
				err = output.WriteStatus(g.Stdout, r, rend.Palette(), rend.Format() == output.FormatWide)
			} else {
				err = rend.Render(r)
			}
			if err != nil {
				return err
			}
			if !r.GuestsHealthy() {
				bad := 0
				for _, gr := range r.Guests {
					if !gr.Healthy {
						bad++
					}
				}
				return Failed(fmt.Errorf("%s with error-level findings", output.Plural(bad, "guest", "guests")))
			}
			return nil
		},
	}
	cf.register(cmd.Flags(), true)
	return cmd
}
