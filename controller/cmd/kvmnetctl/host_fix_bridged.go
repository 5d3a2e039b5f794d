package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/kvmnet/kvmnet/controller/firewall"
	"github.com/kvmnet/kvmnet/controller/fixplan"
)

// bridgedCommands answers Commands for the bridged-guest steps; ok is false for other kinds.
func (h *hostActions) bridgedCommands(st fixplan.HostStep) (cmds []string, ok bool, err error) {
	switch st.Kind {
	case fixplan.StepBridgedAccept:
		f, err := firewall.BridgedAcceptFix(st.Bridge, st.Chain, st.Backend)
		if err != nil {
			return nil, true, err
		}
		for _, c := range f.Commands {
			cmds = append(cmds, c.String()+"   # "+c.Why)
		}
		return append(cmds, "# persistence: "+f.Persist), true, nil
	case fixplan.StepBridgeNFOff:
		hn, err := h.env.hostnet()
		if err != nil {
			return nil, true, err
		}
		defer hn.Close()
		return strings.Split(strings.TrimRight(hn.BridgeNFOffFix().String(), "\n"), "\n"), true, nil
	}
	return nil, false, nil
}

// bridgedDo carries out the bridged-guest steps; ok is false for other kinds.
func (h *hostActions) bridgedDo(ctx context.Context, st fixplan.HostStep) (ok bool, err error) {
	switch st.Kind {
	case fixplan.StepBridgedAccept:
		f, err := firewall.BridgedAcceptFix(st.Bridge, st.Chain, st.Backend)
		if err != nil {
			return true, err
		}
		_, err = firewall.NewFixer(h.run).Apply(ctx, f, false)
		return true, err
	case fixplan.StepBridgeNFOff:
		hn, err := h.env.hostnet()
		if err != nil {
			return true, err
		}
		defer hn.Close()
		if err := hn.ApplyBridgeNFOffFix(hn.BridgeNFOffFix()); err != nil {
			return true, fmt.Errorf("bridge_netfilter_drop: %w", err)
		}
		return true, nil
	}
	return false, nil
}
