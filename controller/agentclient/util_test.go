package agentclient

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

var (
	unixEADDRINUSE error = unix.EADDRINUSE
	unixEACCES     error = unix.EACCES
)

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func fmtSscanf(name string, cid, port *uint32) (int, error) {
	return fmt.Sscanf(name, "peer-%d-%d", cid, port)
}

func TestDialAddrRejectsWhatParseAddrWould(t *testing.T) {
	for _, a := range []Addr{{}, {Scheme: "vsock", CID: 2, Port: 7531}, {Scheme: "vsock", CID: 5}, {Scheme: "serial", Path: "rel.sock"}, {Scheme: "tcp", Path: "/x"}} {
		if c, err := DialAddr(context.Background(), a); err == nil {
			_ = c.Close()
			t.Errorf("DialAddr(%+v) succeeded", a)
		}
	}
}
