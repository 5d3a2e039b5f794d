package exporter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// TextfileName is the file written into node_exporter's textfile collector directory.
const TextfileName = "kvmnet.prom"

// WriteTextfile collects once within budget and writes DIR/kvmnet.prom atomically (a temporary file
// in DIR renamed over it), so node_exporter never reads half a file. It returns the Result so the
// caller can exit non-zero when libvirt could not be read.
func (e *Exporter) WriteTextfile(ctx context.Context, dir string) (Result, error) {
	res := e.Collect(ctx, e.opts.Timeout)
	st, err := os.Stat(dir)
	if err != nil {
		return res, fmt.Errorf("textfile directory: %w", err)
	}
	if !st.IsDir() {
		return res, fmt.Errorf("textfile directory %s: not a directory", dir)
	}
	path := filepath.Join(dir, TextfileName)
	if err := prometheus.WriteToTextfile(path, e.Registry(res)); err != nil {
		return res, fmt.Errorf("write %s: %w", path, err)
	}
	return res, nil
}
