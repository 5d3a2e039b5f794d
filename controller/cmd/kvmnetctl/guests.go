package main

import "github.com/spf13/cobra"

// newGuestsCmd is the `guests` group. Its subcommands live in their own files (guests_status.go,
// guests_enable_channel.go, ...) and are added here, one AddCommand line each.
func newGuestsCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "guests",
		Short: "Inspect and fix the networking of libvirt guests",
	}
	_ = g // used by the subcommands added here
	cmd.AddCommand(newGuestsEnableChannelCmd(g))
	cmd.AddCommand(newGuestsStatusCmd(g))
	cmd.AddCommand(newGuestsFixCmd(g))
	cmd.AddCommand(newGuestsInstallAgentCmd(g))
	return cmd
}
