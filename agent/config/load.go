package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path over Default(): keys present in the file replace the defaults,
// absent keys keep them. A missing file gives Default(). An unknown key is an error naming the key
// (a typo such as "allow_aply" must not silently leave the agent allowed to apply). The result is
// validated.
func Load(path string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("config: read %s: %w", path, err)
	}
	if err := decode(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", path, err)
	}
	return cfg, nil
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type`)

func decode(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if errors.Is(err, io.EOF) { // empty file
		return nil
	}
	if err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var msgs []string
			for _, m := range te.Errors {
				if sm := unknownField.FindStringSubmatch(m); sm != nil {
					m = strings.Replace(m, "field "+sm[1]+" not found in type config.Config",
						"unknown key "+sm[1]+" (known keys: "+strings.Join(Keys(), ", ")+")", 1)
				}
				msgs = append(msgs, m)
			}
			return errors.New(strings.Join(msgs, "; "))
		}
		return fmt.Errorf("invalid YAML: %w", err)
	}
	return nil
}

// Keys lists the YAML keys a config file may contain.
func Keys() []string {
	t := reflect.TypeFor[Config]()
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// Validate checks the values: listen addresses, absolute paths, the rollback timeout range
// (10 s..1 h, as ApplyRequest allows) and the log level.
func (c Config) Validate() error {
	var errs []error
	for _, l := range c.Listen {
		kind, rest, ok := strings.Cut(l, ":")
		switch {
		case !ok || rest == "":
			errs = append(errs, fmt.Errorf("listen %q: want unix:/path, vsock:PORT or virtio-serial:/dev/virtio-ports/NAME", l))
		case kind == "unix" || kind == "virtio-serial" || kind == "serial":
			if !path.IsAbs(rest) {
				errs = append(errs, fmt.Errorf("listen %q: path must be absolute", l))
			}
		case kind == "vsock":
			var port uint64
			if _, err := fmt.Sscanf(rest, "%d", &port); err != nil || fmt.Sprint(port) != rest || port == 0 || port > 1<<32-1 {
				errs = append(errs, fmt.Errorf("listen %q: vsock port must be a number 1..4294967295", l))
			}
		default:
			errs = append(errs, fmt.Errorf("listen %q: unknown transport %q (want unix, vsock or virtio-serial)", l, kind))
		}
	}
	if !path.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("root %q: must be an absolute path", c.Root))
	}
	if !path.IsAbs(c.StateDir) {
		errs = append(errs, fmt.Errorf("state_dir %q: must be an absolute path (taken relative to root)", c.StateDir))
	}
	if c.HostKeepalive < 0 || (c.HostKeepalive > 0 && c.HostKeepalive < 10e9) {
		errs = append(errs, fmt.Errorf("host_keepalive %s: must be 0 (no pings) or at least 10s", c.HostKeepalive))
	}
	if c.DefaultRollbackTimeout < 10e9 || c.DefaultRollbackTimeout > 3600e9 {
		errs = append(errs, fmt.Errorf("default_rollback_timeout %s: must be between 10s and 1h", c.DefaultRollbackTimeout))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}
