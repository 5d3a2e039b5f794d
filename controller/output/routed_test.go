package output

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/diagnose"
)

// TestRoutedGolden renders the routed network without a return route upstream (controller/diagnose's
// routed-no-return.json): the host check names the unknown return route under the table, the status
// blames the upstream router, not the host.
func TestRoutedGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "diagnose", "testdata", "routed-no-return.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r diagnose.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	var host, status bytes.Buffer
	if err := WriteHostCheck(&host, r, NewPalette(false)); err != nil {
		t.Fatal(err)
	}
	if err := WriteStatus(&status, r, NewPalette(false), false); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "hostcheck_routed", host.Bytes())
	checkGolden(t, "status_routed", status.Bytes())
	if !strings.Contains(host.String(), "return route of routed (route): unknown: the upstream router must route 192.168.100.0/24") {
		t.Errorf("host check does not name the unknown return route:\n%s", host.String())
	}
}
