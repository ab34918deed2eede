package main

import "net/http"

// uiHandler serves the web UI; until it exists, a page that says where
// the API is.
func uiHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Kith is running. The local API is under /api/ (token in the data directory, file api-token).\n"))
	})
}
