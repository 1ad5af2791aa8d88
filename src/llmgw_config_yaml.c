/*
 * gateway.yaml's first pass, for the loader files (llmgw_config.c,
 * llmgw_access_config.c): the libyaml event stream becomes a small tree of
 * nodes in the scratch pool, each with its line:column, aliases refused
 * (they would hide where a value comes from); ${VAR} interpolation of scalar
 * values; and the file:line:column messages every loader file reports with.
 *
 * Secrets: a message quotes a value only as it was written in the file,
 * never what a ${VAR} expanded to.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <yaml.h>

#include "llmgw_config.h"
#include "llmgw_config_private.h"

#define CFG_MAX_DEPTH 32
#define CFG_SHOW_MAX 60

/* ---- messages ---------------------------------------------------------- */

apr_status_t llmgw_cfg_fail(cfg_ctx_t *c, llmgw_mark_t m, const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(c->tmp, fmt, ap);
    va_end(ap);
    c->errmsg = apr_psprintf(c->p, "%s:%lu:%lu: %s%s%s", c->file, m.line, m.column,
                             c->owner ? c->owner : "", c->owner ? ": " : "", msg);
    return LLMGW_ECONFIG;
}

static llmgw_mark_t mark_of(yaml_mark_t m)
{
    llmgw_mark_t out = {(unsigned long)m.line + 1, (unsigned long)m.column + 1};
    return out;
}

/* A value for a message: quoted as written, but what a ${VAR} gave stays unseen. */
const char *llmgw_cfg_shown(cfg_ctx_t *c, const cfg_node_t *n, const char *value)
{
    int expanded = strstr(n->text, "${") != NULL;
    const char *s = expanded ? n->text : value;
    const char *more = strlen(s) > CFG_SHOW_MAX ? "..." : "";

    return apr_psprintf(c->tmp, "%s\"%.*s%s\"", expanded ? "the expansion of " : "", CFG_SHOW_MAX,
                        s, more);
}

const char *llmgw_cfg_kind_name(const cfg_node_t *n)
{
    return n->kind == NODE_MAP ? "a mapping" : n->kind == NODE_SEQ ? "a sequence" : "a scalar";
}

/* ---- YAML events -> node tree ---------------------------------------- */

static llmgw_mark_t mark_at_offset(const cfg_ctx_t *c, apr_size_t off)
{
    llmgw_mark_t m = {1, 1};
    apr_size_t i;

    for (i = 0; i < off && i < c->len; i++) {
        m.column = c->text[i] == '\n' ? 1 : m.column + 1;
        m.line += c->text[i] == '\n';
    }
    return m;
}

static apr_status_t yaml_fail(cfg_ctx_t *c, const yaml_parser_t *yp)
{
    llmgw_mark_t m = mark_of(yp->problem_mark);
    const char *problem = yp->problem ? yp->problem : "out of memory";

    if (yp->error == YAML_READER_ERROR)
        m = mark_at_offset(c, yp->problem_offset);
    if (!yp->context)
        return llmgw_cfg_fail(c, m, "YAML syntax error: %s", problem);
    return llmgw_cfg_fail(c, m, "YAML syntax error: %s (%s at %lu:%lu)", problem, yp->context,
                          (unsigned long)yp->context_mark.line + 1,
                          (unsigned long)yp->context_mark.column + 1);
}

static cfg_node_t *node_new(cfg_ctx_t *c, cfg_node_kind_e kind, yaml_mark_t m)
{
    cfg_node_t *n = apr_pcalloc(c->tmp, sizeof(*n));

    n->kind = kind;
    n->mark = mark_of(m);
    n->text = "";
    if (kind != NODE_SCALAR)
        n->items = apr_array_make(c->tmp, 8, sizeof(const cfg_node_t *));
    return n;
}

/* The node an event opens; *out stays NULL for the end of a collection. */
static apr_status_t node_from_event(cfg_ctx_t *c, const yaml_event_t *ev, cfg_node_t **out)
{
    const char *value = (const char *)ev->data.scalar.value;

    *out = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return llmgw_cfg_fail(c, mark_of(ev->start_mark),
                              "YAML aliases (*%s) are not supported; write the value out in full",
                              (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        if (memchr(value, '\0', ev->data.scalar.length))
            return llmgw_cfg_fail(c, mark_of(ev->start_mark), "a value contains a NUL character");
        *out = node_new(c, NODE_SCALAR, ev->start_mark);
        (*out)->text = apr_pstrmemdup(c->tmp, value, ev->data.scalar.length);
        (*out)->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        return APR_SUCCESS;
    case YAML_SEQUENCE_START_EVENT:
        *out = node_new(c, NODE_SEQ, ev->start_mark);
        return APR_SUCCESS;
    case YAML_MAPPING_START_EVENT:
        *out = node_new(c, NODE_MAP, ev->start_mark);
        return APR_SUCCESS;
    default:
        return APR_SUCCESS;
    }
}

static apr_status_t tree_read(cfg_ctx_t *c, yaml_parser_t *yp, int depth, cfg_node_t **out);

static apr_status_t tree_add_child(cfg_ctx_t *c, cfg_node_t *n, const cfg_node_t *child)
{
    int i;

    if (n->kind == NODE_MAP && n->items->nelts % 2 == 0) {
        if (child->kind != NODE_SCALAR)
            return llmgw_cfg_fail(c, child->mark, "a mapping key must be a plain name, not %s",
                                  llmgw_cfg_kind_name(child));
        for (i = 0; i < n->items->nelts; i += 2) {
            if (strcmp(NODE_AT(n, i)->text, child->text) == 0)
                return llmgw_cfg_fail(c, child->mark, "duplicate key \"%s\" (first at line %lu)",
                                      child->text, NODE_AT(n, i)->mark.line);
        }
    }
    APR_ARRAY_PUSH(n->items, const cfg_node_t *) = child;
    return APR_SUCCESS;
}

static apr_status_t tree_read_children(cfg_ctx_t *c, yaml_parser_t *yp, int depth, cfg_node_t *n)
{
    cfg_node_t *child;
    apr_status_t rv;

    if (depth >= CFG_MAX_DEPTH)
        return llmgw_cfg_fail(c, n->mark, "the file nests deeper than %d levels", CFG_MAX_DEPTH);
    for (;;) {
        rv = tree_read(c, yp, depth + 1, &child);
        if (rv != APR_SUCCESS || !child)
            return rv;
        rv = tree_add_child(c, n, child);
        if (rv != APR_SUCCESS)
            return rv;
    }
}

/* Read one node and everything below it; *out NULL means "end of the enclosing collection". */
static apr_status_t tree_read(cfg_ctx_t *c, yaml_parser_t *yp, int depth, cfg_node_t **out)
{
    yaml_event_t ev;
    apr_status_t rv;

    *out = NULL;
    if (!yaml_parser_parse(yp, &ev))
        return yaml_fail(c, yp);
    rv = node_from_event(c, &ev, out);
    yaml_event_delete(&ev);
    if (rv != APR_SUCCESS || !*out || (*out)->kind == NODE_SCALAR)
        return rv;
    return tree_read_children(c, yp, depth, *out);
}

static apr_status_t next_event(cfg_ctx_t *c, yaml_parser_t *yp, yaml_event_type_t *type,
                               llmgw_mark_t *m)
{
    yaml_event_t ev;

    if (!yaml_parser_parse(yp, &ev))
        return yaml_fail(c, yp);
    *type = ev.type;
    *m = mark_of(ev.start_mark);
    yaml_event_delete(&ev);
    return APR_SUCCESS;
}

/* stream-start, exactly one document, stream-end. */
static apr_status_t tree_read_stream(cfg_ctx_t *c, yaml_parser_t *yp, cfg_node_t **root)
{
    yaml_event_type_t type = YAML_NO_EVENT;
    llmgw_mark_t m;
    apr_status_t rv;

    if ((rv = next_event(c, yp, &type, &m)) != APR_SUCCESS ||
        (rv = next_event(c, yp, &type, &m)) != APR_SUCCESS)
        return rv;
    if (type == YAML_STREAM_END_EVENT)
        return llmgw_cfg_fail(c, m,
                              "the file is empty; expected a mapping with backends and routes");
    if ((rv = tree_read(c, yp, 0, root)) != APR_SUCCESS ||
        (rv = next_event(c, yp, &type, &m)) != APR_SUCCESS ||
        (rv = next_event(c, yp, &type, &m)) != APR_SUCCESS)
        return rv;
    if (type == YAML_DOCUMENT_START_EVENT)
        return llmgw_cfg_fail(c, m,
                              "the file holds more than one YAML document; expected exactly one");
    return APR_SUCCESS;
}

apr_status_t llmgw_cfg_tree_parse(cfg_ctx_t *c, cfg_node_t **root)
{
    yaml_parser_t yp;
    apr_status_t rv;

    if (!yaml_parser_initialize(&yp))
        return APR_ENOMEM;
    yaml_parser_set_input_string(&yp, (const unsigned char *)c->text, c->len);
    rv = tree_read_stream(c, &yp, root);
    yaml_parser_delete(&yp);
    return rv;
}

const cfg_node_t *llmgw_cfg_map_get(const cfg_node_t *map, const char *key)
{
    int i;

    for (i = 0; i + 1 < map->items->nelts; i += 2) {
        if (strcmp(NODE_AT(map, i)->text, key) == 0)
            return NODE_AT(map, i + 1);
    }
    return NULL;
}

int llmgw_cfg_is_null(const cfg_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    int i;

    for (i = 0; n->kind == NODE_SCALAR && n->plain && nulls[i]; i++) {
        if (strcmp(n->text, nulls[i]) == 0)
            return 1;
    }
    return 0;
}

/* ---- ${VAR} interpolation -------------------------------------------- */

static int var_name_ok(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || apr_isdigit(s[0]))
        return 0;
    for (i = 0; i < n; i++) {
        if (!apr_isalnum(s[i]) && s[i] != '_')
            return 0;
    }
    return 1;
}

static int env_is_unset(cfg_ctx_t *c, const char *name, apr_size_t n)
{
    const char *v = getenv(apr_pstrmemdup(c->tmp, name, n));
    return !v || !*v;
}

/* The whole value is one "${VAR}" (no default) and VAR is unset or empty. */
static int value_is_lone_unset_var(cfg_ctx_t *c, const char *s)
{
    apr_size_t n = strlen(s);

    return n > 3 && s[0] == '$' && s[1] == '{' && strchr(s, '}') == s + n - 1 &&
           var_name_ok(s + 2, n - 3) && env_is_unset(c, s + 2, n - 3);
}

/* Expand the "${...}" at *sp, append its text to parts and move *sp past the '}'. */
static apr_status_t expand_var(cfg_ctx_t *c, const char *key, const cfg_node_t *n, const char **sp,
                               apr_array_header_t *parts)
{
    const char *name = *sp + 2, *end = strchr(name, '}'), *colon, *val;
    apr_size_t len;

    if (!end)
        return llmgw_cfg_fail(c, n->mark, "%s has a \"${\" without its closing \"}\"", key);
    colon = memchr(name, ':', (apr_size_t)(end - name));
    if (colon && colon[1] != '-')
        colon = NULL;
    len = (apr_size_t)((colon ? colon : end) - name);
    if (!var_name_ok(name, len))
        return llmgw_cfg_fail(c, n->mark, "%s: \"${%.*s}\" does not name an environment variable",
                              key, (int)(end - name), name);
    val = getenv(apr_pstrmemdup(c->tmp, name, len));
    if (val && *val)
        APR_ARRAY_PUSH(parts, const char *) = val;
    else if (colon)
        APR_ARRAY_PUSH(parts, const char *) =
            apr_pstrmemdup(c->tmp, colon + 2, (apr_size_t)(end - colon - 2));
    else
        return llmgw_cfg_fail(c, n->mark, "environment variable %.*s is not set (needed by %s)",
                              (int)len, name, key);
    *sp = end + 1;
    return APR_SUCCESS;
}

/* "$$" is one literal '$' (so "$${X}" stays "${X}"); a '$' not before '{' is kept as is. */
static apr_status_t expand(cfg_ctx_t *c, const char *key, const cfg_node_t *n, const char **out)
{
    apr_array_header_t *parts = apr_array_make(c->tmp, 4, sizeof(const char *));
    const char *s = n->text;
    apr_status_t rv;

    while (*s) {
        apr_size_t run = strcspn(s, "$");
        APR_ARRAY_PUSH(parts, const char *) = apr_pstrmemdup(c->tmp, s, run);
        s += run;
        if (!*s)
            break;
        if (s[1] == '{') {
            if ((rv = expand_var(c, key, n, &s, parts)) != APR_SUCCESS)
                return rv;
            continue;
        }
        APR_ARRAY_PUSH(parts, const char *) = "$";
        s += s[1] == '$' ? 2 : 1;
    }
    *out = apr_array_pstrcat(c->tmp, parts, 0);
    return APR_SUCCESS;
}

/* The text of a scalar value after interpolation; *out NULL when an optional value is absent. */
apr_status_t llmgw_cfg_value_text(cfg_ctx_t *c, const char *key, const cfg_node_t *v,
                                  const char *what, int optional, const char **out)
{
    const char *s;
    apr_status_t rv;

    *out = NULL;
    if (v->kind != NODE_SCALAR)
        return llmgw_cfg_fail(c, v->mark, "%s must be %s, not %s", key, what,
                              llmgw_cfg_kind_name(v));
    if (optional && value_is_lone_unset_var(c, v->text))
        return APR_SUCCESS;
    if ((rv = expand(c, key, v, &s)) != APR_SUCCESS)
        return rv;
    if (!*s && optional)
        return APR_SUCCESS; /* "" or ${X:-} on an optional field: not given */
    if (!*s)
        return llmgw_cfg_fail(c, v->mark, "%s must not be empty", key);
    for (*out = s; *s; s++) {
        if (apr_iscntrl(*s))
            return llmgw_cfg_fail(c, v->mark, "%s must not contain control characters", key);
    }
    return APR_SUCCESS;
}

apr_status_t llmgw_cfg_key_text(cfg_ctx_t *c, const cfg_key_t *k, const cfg_node_t *v,
                                const char *what, const char **out)
{
    return llmgw_cfg_value_text(c, k->name, v, what, !(k->required & c->typebit), out);
}
