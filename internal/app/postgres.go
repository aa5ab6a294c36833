package app

import (
	"context"
	"errors"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
)

func openPostgres(ctx context.Context, url string, box *secret.Box) (store.Store, error) {
	return nil, errors.New("postgres store not built yet")
}
