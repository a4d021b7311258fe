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
		{in: "12.5", currency: "JPY", wantErr: true},
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
