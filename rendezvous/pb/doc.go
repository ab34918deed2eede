// Package pb holds the records a relay keeps in its datastore (not a wire
// format). The .proto source sits beside the generated code, which is
// committed; store.proto says how to regenerate it.
package pb
