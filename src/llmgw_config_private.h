/*
 * Private to the gateway.yaml loader: the YAML node tree and the key-table
 * machinery of src/llmgw_config.c, shared with the files that read parts of
 * the file on its behalf (src/llmgw_access_config.c: access:, pricing:,
 * ledger: and a backend's limits:). Not a public header: nothing outside
 * the loader includes it.
 */
#ifndef LLMGW_CONFIG_PRIVATE_H
#define LLMGW_CONFIG_PRIVATE_H

#include <stddef.h>
#include "llmgw_config.h"

/* Type bits of the key tables; ROUTE stands for "not a backend" (routes, pool members). */
#define T(x) (1u << LLMGW_BACKEND_##x)
#define T_PROVIDERS (T(OPENAI) | T(ANTHROPIC) | T(AZURE_OPENAI) | T(GOOGLE) | T(META) | T(MISTRAL))
#define T_OTHER (1u << LLMGW_BACKEND_TYPE_COUNT)
#define T_ANY 0xffffu

typedef enum { NODE_SCALAR, NODE_SEQ, NODE_MAP } cfg_node_kind_e;

typedef struct {
    cfg_node_kind_e kind;
    llmgw_mark_t mark;
    const char *text;          /* scalars only */
    int plain;                 /* written without quotes: may be a YAML null */
    apr_array_header_t *items; /* sequence: nodes; mapping: key, value, key, value ... */
} cfg_node_t;

#define NODE_AT(n, i) APR_ARRAY_IDX((n)->items, (i), const cfg_node_t *)

/* A name that must match a backend once everything is read. */
typedef struct {
    const char *name;
    const char *shown; /* the name as it may appear in a message */
    const char *owner;
    llmgw_mark_t mark;
    const llmgw_backend_t **slot;
} cfg_ref_t;

/* A pool alias, for the check that virtual model names are unique. */
typedef struct {
    const char *name;
    const llmgw_backend_t *pool;
    const cfg_node_t *node;
} cfg_alias_t;

typedef struct {
    apr_pool_t *p;
    apr_pool_t *tmp;
    const char *file;
    const char *text;
    apr_size_t len;
    const char *errmsg;
    llmgw_config_t *cfg;
    apr_array_header_t *refs;        /* cfg_ref_t */
    apr_hash_t *route_names;         /* name -> const cfg_node_t * */
    apr_array_header_t *aliases;     /* cfg_alias_t, checked once every pool is read */
    const char *owner;               /* "backend \"a\"", prefixed to messages; NULL at top level */
    unsigned typebit;                /* type of the entry being read, for key tables */
    const llmgw_config_opts_t *opts; /* never NULL */
} cfg_ctx_t;

typedef struct cfg_key_t cfg_key_t;
typedef apr_status_t (*cfg_key_fn)(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                   void *obj);
struct cfg_key_t {
    const char *name;
    unsigned types;    /* backend types that accept the key */
    unsigned required; /* backend types that must have it */
    cfg_key_fn parse;
    size_t offset; /* of the field written by parse */
    long min, max;
    const char *const *choices;
};

#define FIELD(obj, k, type) ((type *)(void *)((char *)(obj) + (k)->offset))

/* The first pass and the messages (src/llmgw_config_yaml.c). */
/** The file:line:column message of the file being read; returns LLMGW_ECONFIG. */
apr_status_t llmgw_cfg_fail(cfg_ctx_t *c, llmgw_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const cfg_node_t *llmgw_cfg_map_get(const cfg_node_t *map, const char *key);
int llmgw_cfg_is_null(const cfg_node_t *n);
const char *llmgw_cfg_kind_name(const cfg_node_t *n);
/** A value for a message: quoted as written; what a ${VAR} gave stays unseen. */
const char *llmgw_cfg_shown(cfg_ctx_t *c, const cfg_node_t *n, const char *value);
/** The text of a scalar after ${VAR} expansion; *out NULL for an absent optional value. */
apr_status_t llmgw_cfg_value_text(cfg_ctx_t *c, const char *key, const cfg_node_t *v,
                                  const char *what, int optional, const char **out);
/** llmgw_cfg_value_text for key @p k: optional unless the entry's type requires it. */
apr_status_t llmgw_cfg_key_text(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                const char *what, const char **out);
/** The node tree of c->text (libyaml events; aliases and nesting past a limit refused). */
apr_status_t llmgw_cfg_tree_parse(cfg_ctx_t *c, cfg_node_t **root);

/* Helpers of src/llmgw_config.c for the other loader files. */
/** Apply @p table to the mapping @p map: unknown keys, required keys, parsers. */
apr_status_t llmgw_cfg_keys_apply(cfg_ctx_t *c, const cfg_node_t *map, const cfg_key_t *table,
                                  void *obj);
/** 1 when @p s is a name of letters, digits, '.', '_' and '-'. */
int llmgw_cfg_name_ok(const char *s);

/* Implemented in src/llmgw_access_config.c. */

/** A backend's `limits: {rpm, tpm}` (config_keys of src/llmgw_config.c). */
apr_status_t llmgw_cfg_key_backend_limits(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                          void *obj);
/** The top-level keys access:, pricing: and ledger: (each may be absent). */
apr_status_t llmgw_cfg_access_read(cfg_ctx_t *c, const cfg_node_t *root);
/** Checks that need the whole file: allowlists naming something, budgets priced. */
apr_status_t llmgw_cfg_access_check(cfg_ctx_t *c);

#endif /* LLMGW_CONFIG_PRIVATE_H */
