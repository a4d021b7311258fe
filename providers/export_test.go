package providers

import "net/url"

// SetStripeExtraParam makes c, a stripe connector, send key=value with every
// refund create, so contract tests can send a request Stripe must reject.
func SetStripeExtraParam(c Connector, key, value string) {
	s := c.(*stripeConnector)
	if s.extraParams == nil {
		s.extraParams = url.Values{}
	}
	s.extraParams.Set(key, value)
}
