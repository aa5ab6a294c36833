package sqlite

import (
	"slices"

	"github.com/capirelay/capirelay/internal/store"
)

// sortItems orders claimed items by id: RETURNING gives no order guarantee.
func sortItems(items []store.Item) {
	slices.SortFunc(items, func(a, b store.Item) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}
