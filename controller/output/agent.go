package output

import (
	"fmt"
	"sort"
	"strings"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// AgentState renders a GuestState (`kvmnetctl agent state`): JSON/YAML get the message itself
// (AgentState is a proto.Message through the embedded pointer), the table lists interfaces with a
// summary line. Everything in it is guest text.
type AgentState struct{ *kvmnetv1.GuestState }

// Headers of the interface table.
func (v AgentState) Headers() []string {
	return []string{"INTERFACE", "MAC", "KIND", "STATE", "IPV4", "IPV6", "DEFAULT", "STACK"}
}

// Rows are the interfaces.
func (v AgentState) Rows() [][]string {
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
			Dash(strings.Join(i.GetIpv4(), ",")), Dash(strings.Join(i.GetIpv6(), ",")), Dash(strings.Join(def, ",")),
			strings.ToLower(strings.TrimPrefix(i.GetStack().String(), "NETWORK_STACK_"))})
	}
	return rows
}

// Summary is the line under the table: host, OS, agent, NetworkManager, DNS, report-only mode and
// collection errors.
func (v AgentState) Summary() string {
	var parts []string
	parts = append(parts, "host "+Dash(v.GetHostname()))
	if os := v.GetOs(); os.GetPrettyName() != "" {
		parts = append(parts, os.GetPrettyName())
	}
	parts = append(parts, "agent "+Dash(v.GetAgentVersion()))
	if nm := v.GetNetworkManager(); nm != nil {
		if nm.GetRunning() {
			parts = append(parts, fmt.Sprintf("NetworkManager %s (%d profiles)", nm.GetVersion(), len(nm.GetProfiles())))
		} else {
			parts = append(parts, "NetworkManager not running")
		}
	}
	if d := v.GetDns(); d != nil {
		parts = append(parts, "dns "+Dash(strings.Join(d.GetServers(), ",")))
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
