package providers

import (
	"fmt"
	"strconv"
	"strings"
)

// currencyExponents lists the ISO 4217 currencies whose minor unit is not
// 1/100 of the major unit.
var currencyExponents = map[string]int{
	// zero decimals
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	// three decimals
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	// four decimals
	"CLF": 4, "UYW": 4,
}

// CurrencyExponent returns the number of decimals of the currency's minor
// unit (JPY 0, EUR 2, BHD 3); unknown currencies have 2.
func CurrencyExponent(currency string) int {
	if e, ok := currencyExponents[strings.ToUpper(currency)]; ok {
		return e
	}
	return 2
}

// FormatAmount renders minor units as a decimal string with the currency's
// exponent: 1234 EUR → "12.34", 1234 JPY → "1234", 1234 BHD → "1.234".
func FormatAmount(minor int64, currency string) string {
	exp := CurrencyExponent(currency)
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-minor) // wraps correctly for MinInt64
	}
	s := strconv.FormatUint(u, 10)
	if exp == 0 {
		return sign + s
	}
	if len(s) <= exp {
		s = strings.Repeat("0", exp-len(s)+1) + s
	}
	return sign + s[:len(s)-exp] + "." + s[len(s)-exp:]
}

// FormatDecimal renders minor units as a decimal of at most maxDecimals
// decimals, for APIs that take major units with a fixed precision (cardpay:
// 2). A currency with fewer decimals keeps its own (1234 JPY → "1234"); one
// with more loses only trailing zeros (1230 KWD → "1.23"). An amount that
// cannot be written that way (1234 KWD, 1.234) is an error: it is never rounded.
func FormatDecimal(minor int64, currency string, maxDecimals int) (string, error) {
	s := FormatAmount(minor, currency)
	exp := CurrencyExponent(currency)
	if exp <= maxDecimals {
		return s, nil
	}
	cut := len(s) - (exp - maxDecimals)
	if strings.Trim(s[cut:], "0") != "" {
		return "", fmt.Errorf("format amount %s %s: more than %d decimals", s, strings.ToUpper(currency), maxDecimals)
	}
	return strings.TrimSuffix(s[:cut], "."), nil
}

// ParseAmount parses a non-negative decimal string into minor units of the
// currency. Fewer decimals than the exponent are accepted ("12.3" EUR is
// 1230), and so are trailing zeros beyond it ("1234.00" JPY is 1234); other
// extra decimals are an error, since they cannot be represented.
func ParseAmount(s, currency string) (int64, error) {
	exp := CurrencyExponent(currency)
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || !digits(whole) || (hasDot && (frac == "" || !digits(frac))) {
		return 0, fmt.Errorf("parse amount %q: not a decimal number", s)
	}
	if len(frac) > exp {
		if strings.Trim(frac[exp:], "0") != "" {
			return 0, fmt.Errorf("parse amount %q: more than %d decimals for %s", s, exp, currency)
		}
		frac = frac[:exp]
	}
	n, err := strconv.ParseInt(whole+frac+strings.Repeat("0", exp-len(frac)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse amount %q: out of range", s)
	}
	return n, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
