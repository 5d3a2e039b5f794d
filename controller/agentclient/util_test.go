package agentclient

import (
	"fmt"
	"strconv"

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
