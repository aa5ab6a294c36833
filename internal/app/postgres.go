package app

import (
	"context"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/postgres"
)

func openPostgres(ctx context.Context, url string, box *secret.Box) (store.Store, error) {
	return postgres.Open(ctx, url, box)
}
