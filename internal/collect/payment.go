package collect

import "github.com/capirelay/capirelay/internal/normalize"

// dropCards deletes the values of m that look like card numbers and
// returns how many it deleted (the tag never sends one; a hand-written
// integration or an old tag might).
func dropCards(m map[string]string) int {
	n := 0
	for k, v := range m {
		if normalize.LooksLikeCard(v) {
			delete(m, k)
			n++
		}
	}
	return n
}

// countCards adds n to the payment counter.
func (b *Browser) countCards(n int) {
	if n > 0 && b.Metrics != nil {
		b.Metrics.PaymentDropped.Add(float64(n))
	}
}
