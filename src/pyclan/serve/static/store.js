// What the UI remembers between views (not persisted): the last status and check, the filter.
export const store = { status: null, check: null, filter: "", tags: [] };
