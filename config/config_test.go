package config

import (
	"strings"
	"testing"
)

func TestAPIWorker(t *testing.T) {
	cases := []struct {
		value   string
		want    bool
		wantErr string
	}{
		{"", false, ""},
		{"true", true, ""},
		{"0", false, ""},
		{"yes", false, "BACKFLOW_API_WORKER: want true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv("BACKFLOW_API_WORKER", tc.value)
			c, err := Load()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.APIWorker != tc.want {
				t.Fatalf("APIWorker = %v (error %v), want %v", c.APIWorker, err, tc.want)
			}
		})
	}
}
