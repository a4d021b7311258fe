package providers

import "testing"

func TestCurrencyAmounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		currency string
		exponent int
		minor    int64
		decimal  string
	}{
		{"JPY", 0, 1234, "1234"},
		{"JPY", 0, 0, "0"},
		{"EUR", 2, 1234, "12.34"},
		{"eur", 2, 5, "0.05"},
		{"USD", 2, 100, "1.00"},
		{"USD", 2, 99_999_999, "999999.99"},
		{"BHD", 3, 1234, "1.234"},
		{"BHD", 3, 7, "0.007"},
		{"KWD", 3, 1000, "1.000"},
		{"TND", 3, 12, "0.012"},
		{"XYZ", 2, 1, "0.01"}, // unknown currencies have two decimals
	}
	for _, tt := range tests {
		t.Run(tt.currency+"/"+tt.decimal, func(t *testing.T) {
			t.Parallel()
			if got := CurrencyExponent(tt.currency); got != tt.exponent {
				t.Errorf("CurrencyExponent(%q) = %d, want %d", tt.currency, got, tt.exponent)
			}
			if got := FormatAmount(tt.minor, tt.currency); got != tt.decimal {
				t.Errorf("FormatAmount(%d, %q) = %q, want %q", tt.minor, tt.currency, got, tt.decimal)
			}
			got, err := ParseAmount(tt.decimal, tt.currency)
			if err != nil || got != tt.minor {
				t.Errorf("ParseAmount(%q, %q) = %d, %v; want %d", tt.decimal, tt.currency, got, err, tt.minor)
			}
		})
	}
}

func TestParseAmount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, currency string
		want         int64
		wantErr      bool
	}{
		{in: "12.3", currency: "EUR", want: 1230},
		{in: "12", currency: "EUR", want: 1200},
		{in: "0.5", currency: "BHD", want: 500},
		{in: "12.345", currency: "EUR", wantErr: true},
		{in: "12.340", currency: "EUR", want: 1234},
		{in: "1234.00", currency: "JPY", want: 1234},
		{in: "12.5", currency: "JPY", wantErr: true},
		{in: "1.2340", currency: "KWD", want: 1234},
		{in: "1.2345", currency: "KWD", wantErr: true},
		{in: "", currency: "EUR", wantErr: true},
		{in: "-1.00", currency: "EUR", wantErr: true},
		{in: "1.", currency: "EUR", wantErr: true},
		{in: ".50", currency: "EUR", wantErr: true},
		{in: "1,00", currency: "EUR", wantErr: true},
		{in: "1e3", currency: "EUR", wantErr: true},
		{in: "99999999999999999999", currency: "EUR", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseAmount(tt.in, tt.currency)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseAmount(%q, %q) = %d, %v; want %d, error %v", tt.in, tt.currency, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFormatAmountNegative(t *testing.T) {
	t.Parallel()
	if got := FormatAmount(-1234, "EUR"); got != "-12.34" {
		t.Errorf("FormatAmount(-1234, EUR) = %q", got)
	}
}

// TestFormatDecimal covers the cardpay conversion: at most two decimals,
// never rounded.
func TestFormatDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		minor    int64
		currency string
		want     string // "" when the amount cannot be written with two decimals
	}{
		{1234, "EUR", "12.34"},
		{1000, "EUR", "10.00"},
		{5, "USD", "0.05"},
		{1234, "JPY", "1234"}, // no minor unit: an integer number of yen
		{1230, "KWD", "1.23"}, // three decimals: only a trailing zero may go
		{1000, "KWD", "1.00"},
		{1234, "KWD", ""}, // 1.234 KWD is not a multiple of 0.01
		{7, "BHD", ""},
		{12300, "CLF", "1.23"},
	}
	for _, tt := range tests {
		got, err := FormatDecimal(tt.minor, tt.currency, 2)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("FormatDecimal(%d, %s) = %q, want an error", tt.minor, tt.currency, got)
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("FormatDecimal(%d, %s) = %q, %v; want %q", tt.minor, tt.currency, got, err, tt.want)
		}
		if tt.want != "" {
			if back, err := ParseAmount(got, tt.currency); err != nil || back != tt.minor {
				t.Errorf("ParseAmount(%q, %s) = %d, %v; want %d", got, tt.currency, back, err, tt.minor)
			}
		}
	}
}
