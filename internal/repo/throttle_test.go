package repo

import (
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{
		"": 0, "0": 0, " 0 ": 0,
		"20MiB/s": 20 << 20, "20mib/s": 20 << 20, "20MiB": 20 << 20, "20 MiB/s": 20 << 20, "20Mi": 20 << 20,
		"500KB/s": 500e3, "500kb": 500e3, "1.5GiB/s": 1.5 * (1 << 30), "2GB/s": 2e9, "10MBps": 10e6,
		"1048576": 1 << 20, "4096B/s": 4096, "1KiB/s": 1024,
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"fast":               "not a number",
		"MiB/s":              "not a number",
		"-5MiB/s":            "not a number",
		"1.2.3MB":            "not a number",
		"20Mbit/s":           `unknown unit "Mbit"`,
		"20TB/s":             `unknown unit "TB"`,
		"20 MiB/h":           "unknown unit",
		"100B/s":             "below the least limit of 1KiB/s",
		"1e9GiB":             "unknown unit", // no exponents: "e9GiB" is not a unit
		"9999999999999GiB/s": "too large",
	} {
		_, err := ParseRate(in)
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "rate ") {
			t.Errorf("ParseRate(%q) = %v; want an error with %q", in, err, msg)
		}
	}
}
