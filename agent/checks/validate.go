package checks

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kvmnet/kvmnet/agent/dns"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// Limits of a RunChecks request.
const (
	// MaxChecks is the most checks one request may carry.
	MaxChecks = 64
	// DefaultTimeout applies when a check gives timeout_ms 0.
	DefaultTimeout = 3000 * time.Millisecond
	// MaxTimeoutMS is the largest timeout_ms accepted.
	MaxTimeoutMS = 30000
	maxTarget    = 2048
	maxName      = 64
)

// Validate checks a request without running anything. The error names every invalid check by
// index and name and says what is wrong.
func Validate(req *kvmnetv1.RunChecksRequest) error {
	if req == nil {
		return errors.New("empty request")
	}
	if n := len(req.GetChecks()); n > MaxChecks {
		return fmt.Errorf("%d checks requested; at most %d per request", n, MaxChecks)
	}
	var errs []error
	for i, c := range req.GetChecks() {
		if err := validateCheck(c); err != nil {
			errs = append(errs, fmt.Errorf("check %d (%q): %w", i, c.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// Timeout returns the check's effective deadline.
func Timeout(c *kvmnetv1.Check) time.Duration {
	if c.GetTimeoutMs() == 0 {
		return DefaultTimeout
	}
	return time.Duration(c.GetTimeoutMs()) * time.Millisecond
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func validateCheck(c *kvmnetv1.Check) error {
	if c == nil {
		return errors.New("missing check")
	}
	if len(c.GetName()) > maxName || !printable(c.GetName()) {
		return fmt.Errorf("name must be at most %d printable characters", maxName)
	}
	if c.GetTimeoutMs() > MaxTimeoutMS {
		return fmt.Errorf("timeout_ms %d out of range: want 1..%d (0 means %d)", c.GetTimeoutMs(), MaxTimeoutMS, DefaultTimeout.Milliseconds())
	}
	switch c.GetFamily() {
	case kvmnetv1.Family_FAMILY_ANY, kvmnetv1.Family_FAMILY_V4, kvmnetv1.Family_FAMILY_V6:
	default:
		return fmt.Errorf("unknown family %d", c.GetFamily())
	}
	t := c.GetTarget()
	if len(t) > maxTarget || !printable(t) || strings.ContainsAny(t, " \t") {
		return fmt.Errorf("target must be at most %d printable characters without spaces", maxTarget)
	}
	switch c.GetKind() {
	case kvmnetv1.CheckKind_CHECK_KIND_PING:
		if t == "" {
			return nil
		}
		return validateHost(t, c.GetFamily())
	case kvmnetv1.CheckKind_CHECK_KIND_DNS:
		name, server, hasServer := strings.Cut(t, "@")
		if _, err := netip.ParseAddr(name); err == nil {
			return fmt.Errorf("DNS target %q is an address; give a host name to resolve (optionally name@server)", t)
		}
		if err := validateHostname(name); err != nil {
			return err
		}
		if hasServer {
			if _, err := dns.ParseServer(server); err != nil {
				return fmt.Errorf("after @: %w", err)
			}
		}
		return nil
	case kvmnetv1.CheckKind_CHECK_KIND_TCP:
		host, port, err := net.SplitHostPort(t)
		if err != nil {
			return fmt.Errorf("TCP target %q: want host:port ([v6addr]:port for IPv6)", t)
		}
		if err := validatePort(port); err != nil {
			return err
		}
		return validateHost(host, c.GetFamily())
	case kvmnetv1.CheckKind_CHECK_KIND_HTTP:
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("HTTP target %q: want an http:// or https:// URL with a host", t)
		}
		if p := u.Port(); p != "" {
			if err := validatePort(p); err != nil {
				return err
			}
		}
		return validateHost(u.Hostname(), c.GetFamily())
	default:
		return fmt.Errorf("unknown check kind %d: want PING, DNS, TCP or HTTP", c.GetKind())
	}
}

func validatePort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q out of range 1..65535", p)
	}
	return nil
}

// validateHost accepts an IP literal of the requested family or a host name.
func validateHost(h string, fam kvmnetv1.Family) error {
	if a, err := netip.ParseAddr(h); err == nil {
		a = a.Unmap()
		if fam == kvmnetv1.Family_FAMILY_V4 && !a.Is4() {
			return fmt.Errorf("address %s is not IPv4 but the check is FAMILY_V4", h)
		}
		if fam == kvmnetv1.Family_FAMILY_V6 && !a.Is6() {
			return fmt.Errorf("address %s is not IPv6 but the check is FAMILY_V6", h)
		}
		return nil
	}
	return validateHostname(h)
}

// validateHostname checks DNS name syntax: at most 253 characters, labels of 1..63 letters,
// digits, '-' or '_', not starting or ending with '-'.
func validateHostname(h string) error {
	name := strings.TrimSuffix(h, ".")
	bad := fmt.Errorf("%q is neither an IP address nor a valid host name", h)
	if name == "" || len(name) > 253 {
		return bad
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return bad
			}
		}
	}
	return nil
}
