package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/controller/agentclient"
	"github.com/kvmnet/kvmnet/controller/output"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

func newAgentCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Talk to kvmnet-agent in a guest directly",
	}
	cmd.AddCommand(newAgentStateCmd(g))
	return cmd
}

func newAgentStateCmd(g *Globals) *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "state --addr unix:/path|vsock:CID:PORT|serial:/path",
		Short: "Print the guest's own view of its network, as kvmnet-agent reports it",
		Example: "  kvmnetctl agent state --addr serial:/var/lib/kvmnet/channels/vm1.agent.sock\n" +
			"  kvmnetctl agent state --addr vsock:3:7531 -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := g.Renderer()
			if _, err := agentclient.ParseAddr(addr); err != nil {
				return Usage(err)
			}
			ctx, cancel := g.Context(cmd.Context())
			defer cancel()
			c, err := agentclient.Dial(ctx, addr)
			if err != nil {
				return Unreachable(err)
			}
			defer c.Close()
			st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
			if err != nil {
				err = fmt.Errorf("agent %s: GetState: %w", addr, err)
				switch status.Code(err) {
				case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
					return Unreachable(err)
				}
				return err
			}
			return r.Render(output.AgentState{GuestState: st})
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "agent address: unix:/path, vsock:CID:PORT or serial:/path/to/channel.sock")
	_ = cmd.MarkFlagRequired("addr")
	return cmd
}
