package agentclient

import (
	"context"

	"google.golang.org/grpc"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// ReadOnlyClient is a connection to one agent that can only read: GetState and RunChecks. It holds
// the gRPC connection itself, not a kvmnetv1.AgentClient, so code given one (the Prometheus
// exporter) has no way to reach Apply, Confirm or Rollback.
type ReadOnlyClient struct {
	cc   *grpc.ClientConn
	addr Addr
}

// DialReadOnly connects like DialAddr and returns a client limited to the read-only calls.
func DialReadOnly(ctx context.Context, addr Addr, opts ...Option) (*ReadOnlyClient, error) {
	c, err := DialAddr(ctx, addr, opts...)
	if err != nil {
		return nil, err
	}
	return &ReadOnlyClient{cc: c.cc, addr: c.addr}, nil
}

// GetState asks the agent for the guest's view of its network.
func (c *ReadOnlyClient) GetState(ctx context.Context, in *kvmnetv1.GetStateRequest, opts ...grpc.CallOption) (*kvmnetv1.GuestState, error) {
	out := new(kvmnetv1.GuestState)
	if err := c.cc.Invoke(ctx, kvmnetv1.Agent_GetState_FullMethodName, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

// RunChecks runs connectivity checks in the guest (they change nothing there).
func (c *ReadOnlyClient) RunChecks(ctx context.Context, in *kvmnetv1.RunChecksRequest, opts ...grpc.CallOption) (*kvmnetv1.RunChecksResponse, error) {
	out := new(kvmnetv1.RunChecksResponse)
	if err := c.cc.Invoke(ctx, kvmnetv1.Agent_RunChecks_FullMethodName, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

// Addr is the address the client was dialed with.
func (c *ReadOnlyClient) Addr() Addr { return c.addr }

// Close closes the connection.
func (c *ReadOnlyClient) Close() error { return c.cc.Close() }
