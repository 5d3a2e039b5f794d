package exporter

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/common/expfmt"

	"github.com/kvmnet/kvmnet/controller/atomicfile"
)

// TextfileName is the file written into node_exporter's textfile collector directory.
const TextfileName = "kvmnet.prom"

// WriteTextfile collects once within budget and writes DIR/kvmnet.prom through atomicfile (a
// temporary file in DIR, fsynced, renamed over it, DIR fsynced), so node_exporter never reads half a
// file and a crash never leaves an empty one. It returns the Result so the
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
	mfs, err := e.Registry(res).Gather()
	if err != nil {
		return res, fmt.Errorf("gather metrics for %s: %w", path, err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return res, fmt.Errorf("render metrics for %s: %w", path, err)
		}
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return res, fmt.Errorf("write %s: %w", path, err)
	}
	return res, nil
}
