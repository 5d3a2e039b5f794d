package main

import (
	"fmt"
	"net"
)

// sdNotify sends state to systemd's notification socket (a unixgram socket; a leading '@' names the
// abstract namespace, which Go's net package understands). An empty socket means not under systemd.
func sdNotify(socket, state string) error {
	if socket == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", socket, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", socket, err)
	}
	return nil
}
