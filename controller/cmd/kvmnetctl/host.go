package main

import "github.com/spf13/cobra"

// newHostCmd is the `host` group. Its subcommands live in their own files (host_check.go,
// host_fix.go, ...) and are added here, one AddCommand line each.
func newHostCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Check and fix the host side: libvirt networks, bridges, forwarding, firewall",
	}
	_ = g // used by the subcommands added here
	cmd.AddCommand(newHostCheckCmd(g))
	cmd.AddCommand(newHostFixCmd(g))
	return cmd
}
