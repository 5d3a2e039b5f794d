package agentclient

import (
	"context"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// The read-only client reads like the full one and has no method that changes a guest.
func TestReadOnlyClient(t *testing.T) {
	addr, _ := unixAgent(t, "guest-ro")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := DialReadOnly(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.GetState(ctx, &kvmnetv1.GetStateRequest{})
	if err != nil || st.GetHostname() != "guest-ro" {
		t.Fatalf("GetState = %v, %v", st, err)
	}
	// The fake implements no RunChecks: the call reaches the agent and comes back Unimplemented.
	if _, err := c.RunChecks(ctx, &kvmnetv1.RunChecksRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("RunChecks error = %v, want Unimplemented from the server", err)
	}
	typ := reflect.TypeOf(c)
	var names []string
	for i := 0; i < typ.NumMethod(); i++ {
		names = append(names, typ.Method(i).Name)
	}
	if want := []string{"Addr", "Close", "GetState", "RunChecks"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("ReadOnlyClient methods = %v, want exactly %v", names, want)
	}
}
