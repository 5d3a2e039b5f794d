package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kvmnet/kvmnet/controller/agentclient"
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
			r, err := g.Renderer()
			if err != nil {
				return err
			}
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
			return r.Render(stateView{st})
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "agent address: unix:/path, vsock:CID:PORT or serial:/path/to/channel.sock")
	_ = cmd.MarkFlagRequired("addr")
	return cmd
}

// stateView renders a GuestState: JSON/YAML get the message itself (stateView is a proto.Message
// through the embedded pointer), the table lists interfaces with a summary line.
type stateView struct{ *kvmnetv1.GuestState }

func (v stateView) Headers() []string {
	return []string{"INTERFACE", "MAC", "KIND", "STATE", "IPV4", "IPV6", "DEFAULT", "STACK"}
}

func (v stateView) Rows() [][]string {
	var rows [][]string
	for _, i := range v.GetInterfaces() {
		var def []string
		if i.GetDefaultRouteV4() {
			def = append(def, "v4")
		}
		if i.GetDefaultRouteV6() {
			def = append(def, "v6")
		}
		rows = append(rows, []string{i.GetName(), i.GetMac(), i.GetKind(), i.GetOperState(),
			dash(strings.Join(i.GetIpv4(), ",")), dash(strings.Join(i.GetIpv6(), ",")), dash(strings.Join(def, ",")),
			strings.ToLower(strings.TrimPrefix(i.GetStack().String(), "NETWORK_STACK_"))})
	}
	return rows
}

func (v stateView) Summary() string {
	var parts []string
	parts = append(parts, "host "+dash(v.GetHostname()))
	if os := v.GetOs(); os.GetPrettyName() != "" {
		parts = append(parts, os.GetPrettyName())
	}
	parts = append(parts, "agent "+dash(v.GetAgentVersion()))
	if nm := v.GetNetworkManager(); nm != nil {
		if nm.GetRunning() {
			parts = append(parts, fmt.Sprintf("NetworkManager %s (%d profiles)", nm.GetVersion(), len(nm.GetProfiles())))
		} else {
			parts = append(parts, "NetworkManager not running")
		}
	}
	if d := v.GetDns(); d != nil {
		parts = append(parts, "dns "+dash(strings.Join(d.GetServers(), ",")))
	}
	if c := v.GetConfig(); c != nil {
		parts = append(parts, fmt.Sprintf("allow_apply=%t", c.GetAllowApply()))
	}
	if errs := v.GetCollectionErrors(); len(errs) > 0 {
		e := append([]string(nil), errs...)
		sort.Strings(e)
		parts = append(parts, "collection errors: "+strings.Join(e, "; "))
	}
	return strings.Join(parts, ", ")
}

// dash shows an empty cell as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
