package refund_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
)

func TestNewAPIKeyValidate(t *testing.T) {
	merchant := uuid.New()
	for _, tc := range []struct {
		name   string
		in     refund.NewAPIKey
		fields []string // invalid fields; none: valid
		scopes []string // the scopes after validation
	}{
		{"defaults exclude the platform scope", refund.NewAPIKey{MerchantID: merchant, Name: " backend "}, nil, refund.DefaultMerchantScopes},
		{"platform scope when asked", refund.NewAPIKey{MerchantID: merchant, Name: "platform", Scopes: []string{refund.ScopeTransactionsWrite}},
			nil, []string{refund.ScopeTransactionsWrite}},
		{"ops key", refund.NewAPIKey{Name: "ops"}, nil, []string{refund.ScopeOps}},
		{"empty name", refund.NewAPIKey{MerchantID: merchant, Name: "  "}, []string{"name"}, nil},
		{"long name", refund.NewAPIKey{MerchantID: merchant, Name: strings.Repeat("n", 101)}, []string{"name"}, nil},
		{"unknown scope", refund.NewAPIKey{MerchantID: merchant, Name: "k", Scopes: []string{"refunds:read", "refunds:delete"}},
			[]string{"scopes[1]"}, nil},
		{"ops scope on a merchant key", refund.NewAPIKey{MerchantID: merchant, Name: "k", Scopes: []string{refund.ScopeOps}},
			[]string{"scopes[0]"}, nil},
		{"merchant scope on an ops key", refund.NewAPIKey{Name: "k", Scopes: []string{refund.ScopeRefundsRead}}, []string{"scopes[0]"}, nil},
		{"no scopes", refund.NewAPIKey{MerchantID: merchant, Name: "k", Scopes: []string{}}, []string{"scopes"}, nil},
		{"twice", refund.NewAPIKey{MerchantID: merchant, Name: "k", Scopes: []string{"refunds:read", "refunds:read"}}, []string{"scopes[1]"}, nil},
		{"short given secret", refund.NewAPIKey{MerchantID: merchant, Name: "k", Secret: "bf_short"}, []string{"secret"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			err := in.Validate()
			if got := invalidFields(err); !slices.Equal(got, tc.fields) {
				t.Fatalf("invalid fields %v, want %v (%v)", got, tc.fields, err)
			}
			if tc.scopes != nil && !slices.Equal(in.Scopes, tc.scopes) {
				t.Fatalf("scopes %v, want %v", in.Scopes, tc.scopes)
			}
			if err == nil && in.Name != strings.TrimSpace(tc.in.Name) {
				t.Fatalf("name %q not trimmed", in.Name)
			}
		})
	}
}

func TestNewMerchantValidate(t *testing.T) {
	neg, ok, big := int64(-1), int64(0), int64(100_000_000)
	for _, tc := range []struct {
		in     refund.NewMerchant
		fields []string
	}{
		{refund.NewMerchant{Name: "Acme"}, nil},
		{refund.NewMerchant{Name: "Acme", ApprovalThreshold: &ok}, nil},
		{refund.NewMerchant{Name: ""}, []string{"name"}},
		{refund.NewMerchant{Name: "Acme", ApprovalThreshold: &neg}, []string{"approvalThreshold"}},
		{refund.NewMerchant{Name: " ", ApprovalThreshold: &big}, []string{"name", "approvalThreshold"}},
	} {
		if got := invalidFields(tc.in.Validate()); !slices.Equal(got, tc.fields) {
			t.Errorf("%+v: invalid fields %v, want %v", tc.in, got, tc.fields)
		}
	}
}

func invalidFields(err error) []string {
	v, ok := err.(*refund.ValidationError)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range v.Fields {
		out = append(out, f.Field)
	}
	return out
}
