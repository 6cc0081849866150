#!/usr/bin/env python3
"""Regenerates the golden files in this folder with Python's jinja2, set up
exactly as transformers' chat_template_utils._compile_jinja_template does.

    python3 gen.py /path/to/shared/data

constructs.json: one small template per Jinja construct, with its variables
and the expected output (or the error class jinja2 raised).
chats.json: renderings of the real tokenizer_config.json templates in
shared/data/tokenizers for a set of chats, as apply_chat_template makes them.
"""
import json
import os
import sys

import jinja2
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    # transformers' {% generation %} tag: renders its body unchanged.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    import datetime
    return datetime.datetime(2024, 7, 26, 9, 5, 3).strftime(fmt)


def env():
    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    e.filters["tojson"] = tojson
    e.globals["raise_exception"] = raise_exception
    e.globals["strftime_now"] = strftime_now
    return e


CONSTRUCTS = [
    # name, template, vars
    ("text", "plain text", {}),
    ("print_string", "{{ 'a' }}{{ \"b\" }}{{ 'c' 'd' }}", {}),
    ("print_scalars", "{{ none }}|{{ None }}|{{ true }}|{{ False }}|{{ 1 }}|{{ 1.0 }}|{{ 1_000 }}|{{ 2.5e3 }}", {}),
    ("print_floats", "{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1e-5 }}|{{ 123456789012345678.0 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 0.0001 }}", {}),
    ("print_containers", "{{ [1, 'a', none, true] }}|{{ {'a': 1, 'b': [2]} }}|{{ (1,) }}|{{ (1, 2) }}|{{ () }}|{{ [] }}", {}),
    ("print_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n', 'tab\\t'] }}", {}),
    ("string_escapes", "{{ 'a\\nb\\tc\\\\d\\'e\\x41\\u00e9\\q' }}", {}),
    ("undefined_print", "[{{ nothing }}][{{ msg.missing }}][{{ [1][3] }}][{{ none.x }}]", {"msg": {"a": 1}}),
    ("undefined_truthy", "{% if nothing %}T{% else %}F{% endif %}{% for x in nothing %}x{% endfor %}{{ nothing | length }}", {}),
    ("undefined_attr_error", "{{ nothing.attr }}", {}),
    ("undefined_add_error", "{{ nothing + 'x' }}", {}),
    ("undefined_concat", "{{ nothing ~ 'x' ~ none ~ 1 }}", {}),
    ("undefined_eq", "{{ nothing == nothing2 }}{{ nothing == none }}{{ nothing != 1 }}", {}),
    ("truthiness", "{% for v in [0, 1, 0.0, '', 'a', [], [0], {}, {'a': 1}, none, false, true] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("arith_int", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 6 * 7 }} {{ 7 / 2 }} {{ 8 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}", {}),
    ("arith_float", "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 1.5 }} {{ true + 1 }} {{ 3 * 1.5 }} {{ -(3) }} {{ +4 }} {{ -2.5 }}", {}),
    ("arith_str_list", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [1] + [2, 3] }} {{ [0] * 3 }}", {}),
    ("arith_type_error", "{{ 'a' + 1 }}", {}),
    ("div_zero", "{{ 1 / 0 }}", {}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 'a' ~ 2 * 3 }} {{ not 1 == 2 }} {{ 1 if 0 else 2 if 0 else 3 }}", {}),
    ("concat_tilde", "{{ 'a' ~ 1 ~ 2.0 ~ true ~ [1] }}", {}),
    ("compare", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ {'a': 1} == {'a': 1} }} {{ 'a' != 'a' }} {{ none == none }}", {}),
    ("compare_type_error", "{{ 'a' < 1 }}", {}),
    ("in_operator", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 3 not in [1] }} {{ 'x' in nothing }} {{ (1, 2) in [(1, 2)] }}", {}),
    ("in_type_error", "{{ 1 in 'abc' }}", {}),
    ("and_or_not", "{{ 1 and 2 }} {{ 0 and 2 }} {{ 0 or 'x' }} {{ '' or [] }} {{ not 0 }} {{ not 'a' }} {{ none or 'd' }} {{ true and not false }}", {}),
    ("cond_expr", "{{ 'y' if true else 'n' }}{{ 'y' if false else 'n' }}[{{ 'y' if false }}]", {}),
    ("if_elif_else", "{% for i in range(4) %}{% if i == 0 %}zero{% elif i == 1 %}one{% elif i == 2 %}two{% else %}many{% endif %},{% endfor %}", {}),
    ("for_loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ x }};{% endfor %}", {}),
    ("for_prev_next", "{% for x in [1, 2, 3] %}({{ loop.previtem }},{{ loop.nextitem }}){% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.index }}{{ loop.last }} {% else %}none{% endfor %}", {}),
    ("for_unpack", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}", {}),
    ("for_dict_keys", "{% for k in {'z': 1, 'a': 2} %}{{ k }}{% endfor %}", {}),
    ("for_nested_loop", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ loop.depth }}{% endfor %}{{ loop.index }}{{ loop.depth0 }}|{% endfor %}", {}),
    ("for_scoping", "{% set x = 0 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}({{ x }}){% endfor %}{{ x }}{% set i = 9 %}{% for i in [1] %}{% endfor %}{{ i }}", {}),
    ("for_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("for_cycle", "{% for i in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("for_none_error", "{% for x in none %}{% endfor %}", {}),
    ("set_simple", "{% set a = 1 %}{% set b, c = [2, 3] %}{% set d = 'x', 'y' %}{{ a }}{{ b }}{{ c }}{{ d }}", {}),
    ("set_in_if", "{% if true %}{% set z = 3 %}{% endif %}{{ z }}", {}),
    ("set_block", "{% set x %}a{{ 1 + 1 }}b{% endset %}[{{ x }}]{% set y | upper %}lo{% endset %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(a=1, b='x') %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }}{{ ns.missing is defined }}", {}),
    ("namespace_set_error", "{% set d = {} %}{% set d.x = 1 %}", {}),
    ("getattr_getitem", "{{ m.role }}{{ m['role'] }}{{ m.items is defined }}{{ m['items'] }}{{ l[0] }}{{ l[-1] }}{{ l.0 }}{{ 'abc'[1] }}{{ 'héllo'[1] }}{{ m.get('role') }}{{ m.get('zz', 'dflt') }}", {"m": {"role": "user", "items": "I"}, "l": [1, 2, 3]}),
    ("slicing", "{{ [1, 2, 3, 4, 5][1:3] }}{{ [1, 2, 3][::-1] }}{{ 'abcdef'[::2] }}{{ 'abcdef'[-2:] }}{{ [1, 2, 3, 4, 5][4:1:-1] }}{{ [1, 2, 3][:-1] }}{{ 'héllo'[::-1] }}{{ [1, 2, 3][5:] }}{{ [1, 2, 3, 4, 5, 6][-1:-5:-2] }}{{ (1, 2, 3)[1:] }}", {}),
    ("slice_step_zero", "{{ [1][::0] }}", {}),
    ("str_methods", "{{ ' a b '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\na'.lstrip('\\n') }}|{{ 'a  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}|{{ 'Hi There'.upper() }}{{ 'Hi'.lower() }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abc'.find('c') }}{{ 'abc'.find('z') }}|{{ '-'.join(['a', 'b']) }}|{{ 'a\\nb\\n'.splitlines() }}|{{ 'abab'.count('ab') }}", {}),
    ("str_split_last", "{{ 'x</think>\\n\\ny'.split('</think>')[-1].lstrip('\\n') }}|{{ '<think>\\nr\\n</think>y'.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}", {}),
    ("dict_methods", "{{ d.items() | list }}|{{ d.keys() | list }}|{{ d.values() | list }}{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}", {"d": {"z": 1, "a": 2}}),
    ("list_append_unsafe", "{% set l = [] %}{{ l.append(1) }}", {}),
    ("tests", "{{ 1 is defined }}{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is string }}{{ {} is mapping }}{{ [] is mapping }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ false is false }}{{ 0 is false }}{{ true is true }}{{ [] is sequence }}{{ 'a' is iterable }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 1 is eq 1 }}{{ 1 is ne 1 }}{{ 2 is gt 1 }}{{ 'a' is in 'abc' }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ none is not none }}{{ x is not defined }}{{ raise_exception is callable }}", {}),
    ("filter_basic", "{{ '  a  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'abc' | length }}{{ [1, 2] | length }}{{ {'a': 1} | length }}{{ 'héllo' | length }}{{ [1] | count }}|{{ x | default('d') }}{{ none | default('d') }}{{ '' | default('d', true) }}{{ 0 | d('z', boolean=true) }}|{{ [1, 2, 3] | join(', ') }}{{ ['a', 'b'] | join }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ 'aXbX' | replace('X', '-') }}|{{ 'hello world' | title }}|{{ 'hi' | capitalize }}", {}),
    ("filter_items_list", "{{ {'b': 1, 'a': 2} | items | list }}|{{ 'ab' | list }}|{{ x | items | list }}", {}),
    ("filter_first_last_reverse", "{{ [3, 1, 2] | first }}{{ [3, 1, 2] | last }}{{ [3, 1, 2] | reverse | list }}{{ 'abc' | reverse }}{{ 'abc' | first }}", {}),
    ("filter_numbers", "{{ '42' | int }}{{ 'x' | int }}{{ 3.9 | int }}{{ '2.5' | float }}{{ 3 | float }}{{ -3 | abs }}{{ 2.567 | round(2) }}{{ 2.5 | round }}{{ 2.1 | round(0, 'ceil') }}", {}),
    ("filter_string_filter", "{{ 1 | string }}{{ none | string }}{{ [1, 'a'] | string }}{{ true | string }}", {}),
    ("filter_map_select", "{{ msgs | map(attribute='role') | list }}|{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ msgs | rejectattr('role', 'eq', 'user') | list | length }}|{{ [0, 1, 2, 3] | select('odd') | list }}|{{ [0, 1, '', 'a'] | select | list }}|{{ [0, 1] | reject | list }}|{{ ['a', 'B'] | map('upper') | list }}|{{ msgs | selectattr('tool') | list | length }}", {"msgs": [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"}, {"role": "user", "content": "u2"}]}),
    ("filter_sort_unique", "{{ [3, 1, 2] | sort }}{{ [3, 1, 2] | sort(reverse=true) }}{{ ['b', 'A', 'c'] | sort }}{{ ['b', 'A', 'a'] | unique | list }}{{ msgs | sort(attribute='n') | map(attribute='n') | list }}{{ {'b': 1, 'a': 2} | dictsort }}{{ [1, 2, 3] | sum }}{{ [3, 1, 2] | min }}{{ [3, 1, 2] | max }}", {"msgs": [{"n": 2}, {"n": 1}]}),
    ("filter_indent_center", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'ab' | center(7) }}|{{ 'abc' | center(6) }}|{{ 'one two  three' | wordcount }}", {}),
    ("title_filter_vs_method", "{{ \"they're x-ray (big)dEAL\" | title }}|{{ \"they're x-ray (big)dEAL\".title() }}", {}),
    ("filter_batch", "{{ [1, 2, 3, 4, 5] | batch(2) | list }}{{ [1, 2, 3] | batch(2, 0) | list }}", {}),
    ("tojson_basic", "{{ v | tojson }}", {"v": {"name": "f", "description": "Ünïcode <b> & 'q' \"dq\"\n\\", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}, "n": 1.5, "i": 2, "b": True, "none": None, "empty": [], "emptyd": {}}}),
    ("tojson_args", "{{ v | tojson(indent=2) }}|{{ v | tojson(sort_keys=true) }}|{{ v | tojson(ensure_ascii=true) }}|{{ v | tojson(separators=(',', ':')) }}|{{ [] | tojson(indent=2) }}|{{ (1, 2) | tojson }}|{{ 'x' | tojson }}|{{ 1e20 | tojson }}", {"v": {"b": [1, {"c": "é😀"}], "a": "x"}}),
    ("tojson_undefined_error", "{{ nothing | tojson }}", {}),
    ("macro", "{% macro f(a, b='x', c=none) %}[{{ a }}{{ b }}{{ c }}]{% endmacro %}{{ f(1) }}{{ f(2, 'y') }}{{ f(3, c='z') }}{{ f() }}", {}),
    ("macro_scope", "{% set q = 4 %}{% macro m() %}{{ q }}{% endmacro %}{% set q = 5 %}{{ m() }}", {}),
    ("macro_recursive_caller", "{% macro render(v) %}{% if v is mapping %}{% for k, x in v.items() %}{{ k }}:{{ render(x) }};{% endfor %}{% else %}{{ v }}{% endif %}{% endmacro %}{{ render({'a': {'b': 1}, 'c': 2}) }}", {}),
    ("call_block", "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner{% endcall %}", {}),
    ("filter_block", "{% filter upper %}abc{{ 'd' }}{% endfilter %}", {}),
    ("raw_block", "{% raw %}{{ not parsed }}{% endraw %}", {}),
    ("comment", "a{# comment #}b\n{# line comment #}\nc", {}),
    ("whitespace_minus", "a  {{- 'b' -}}  c\n  {%- if true -%}\n  d  {%- endif %}  e", {}),
    ("trim_blocks", "{% if true %}\nline1\n{% endif %}\nline2\n{% for i in [1, 2] %}\n{{ i }}\n{% endfor %}\n", {}),
    ("lstrip_blocks", "  {% if true %}\n    indented\n  {% endif %}\n\t{% set x = 1 %}\n  {{ 'var not stripped' }}\n  text {% if true %}kept{% endif %}\n", {}),
    ("plus_modifiers", "  {%+ if true %}a{% endif +%}\nb", {}),
    ("trailing_newline", "line\n", {}),
    ("crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("generation_tag", "{% generation %}gen{{ 1 }}{% endgeneration %}", {}),
    ("raise_exception", "{% if true %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}", {}),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %y %j %a %%') }}", {}),
    ("range_dict", "{{ range(3) | list }}{{ range(1, 7, 2) | list }}{{ range(3, 0, -1) | list }}{{ dict(a=1, b=2) }}{{ dict({'x': 1}, y=2) }}", {}),
    ("percent_format", "{{ '%s=%d, %r %.2f %5s|%-3d|%%' % ('a', 3, 'b', 2.5, 'x', 7) }}{{ 'one %s' % 'arg' }}", {}),
    ("test_arg_parse", "{{ x is defined if true else 'u' }}", {}),
    ("nested_data_access", "{% for m in messages %}{{ m.tool_calls[0].function.name if m.tool_calls is defined else '-' }}{{ m['tool_calls'][0]['function']['arguments'] | tojson if m.tool_calls is defined }};{% endfor %}", {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]}]}),
    ("dict_literal_order", "{{ {'z': 1, 'a': 2, 'm': 3} | tojson }}{{ {'a': 1, 'a': 2} }}", {}),
    ("none_methods_error", "{{ none.startswith('a') }}", {}),
    ("unknown_filter", "{{ 1 | nosuchfilter }}", {}),
]

PARSE_ERRORS = [
    ("parse_unclosed_if", "{% if true %}\nabc"),
    ("parse_bad_end", "{% for x in y %}\n{% endif %}"),
    ("parse_unknown_tag", "a\n  {% frobnicate %}"),
    ("parse_bad_expr", "{{ 1 + }}"),
    ("parse_unclosed_var", "{{ 'a' "),
    ("parse_unterminated_string", "{{ 'abc }}"),
]


def chats():
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city.",
                                          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "add", "description": "Add two integers.",
                                          "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
    ]
    two_turn = [
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": "2+3 equals 5."},
        {"role": "user", "content": "Now multiply that by 4."},
    ]
    with_system = [{"role": "system", "content": "You are a terse assistant.\nAnswer in one line."}] + two_turn
    thinking = [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "<think>\nCheck divisors 2..2: none.\n</think>\n\nYes, 7 is prime."},
        {"role": "user", "content": "And 9?"},
        {"role": "assistant", "content": "<think>\n9 = 3*3.\n</think>\n\nNo."},
    ]
    reasoning_field = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "Greet back."},
    ]
    tool_flow = [
        {"role": "system", "content": "Use tools when helpful."},
        {"role": "user", "content": "Weather in Paris, and 2+2?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}},
            {"type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 2}"}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "4"},
        {"role": "assistant", "content": "It is 21°C in Paris; 2+2 = 4."},
    ]
    deepseek_tools = [
        {"role": "system", "content": "Sys A"},
        {"role": "system", "content": "Sys B"},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
            {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}}]},
        {"role": "tool", "content": "21"},
        {"role": "tool", "content": "19"},
        {"role": "assistant", "content": "Paris 21, Lyon 19."},
        {"role": "user", "content": "Thanks. 日本語も？"},
    ]
    whitespace = [{"role": "user", "content": "  padded  \n"}, {"role": "assistant", "content": "\nok\n"}]
    single_tool = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}}]},
        {"role": "tool", "content": {"temp": -3, "sky": "snow"}},
        {"role": "assistant", "content": "It is -3 and snowing."},
    ]
    multimodal = [
        {"role": "system", "content": "First system."},
        {"role": "system", "content": "Second system."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}, {"type": "text", "text": "Briefly."}]},
        {"role": "assistant", "content": "  A cat.  "},
    ]
    out = []
    specials = {}
    base = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    sources = []
    for name in ["qwen3", "llama3", "deepseek_v3"]:
        cfg = json.load(open(os.path.join(base, "tokenizers", name, "tokenizer_config.json")))
        sources.append((name, cfg["chat_template"], cfg))
    for fn in sorted(os.listdir(os.path.join(here, "templates"))):
        src = open(os.path.join(here, "templates", fn), encoding="utf-8").read()
        sources.append(("templates/" + fn, src, {"bos_token": "<s>", "eos_token": "</s>"}))
    for name, src, cfg in sources:
        tmpl = env().from_string(src)
        sp = {}
        for k in ["bos_token", "eos_token", "pad_token", "unk_token"]:
            v = cfg.get(k)
            if isinstance(v, dict):
                v = v["content"]
            if v is not None:
                sp[k] = v
        specials[name] = sp
        chats = {"two_turn": two_turn, "with_system": with_system, "thinking": thinking,
                 "reasoning_field": reasoning_field, "tool_flow": tool_flow, "deepseek_tools": deepseek_tools,
                 "whitespace": whitespace, "single_tool": single_tool, "multimodal": multimodal}
        for chat_name, msgs in chats.items():
            for agp in [False, True]:
                for kwargs in [{}, {"enable_thinking": False}]:
                    for with_tools in [False, True]:
                        if with_tools and chat_name not in ("tool_flow", "two_turn", "single_tool"):
                            continue
                        ctx = dict(messages=msgs, tools=tools if with_tools else None, documents=None,
                                   add_generation_prompt=agp, **sp, **kwargs)
                        case = {"template": name, "chat": chat_name, "add_generation_prompt": agp,
                                "kwargs": kwargs, "tools": with_tools}
                        try:
                            case["text"] = tmpl.render(**ctx)
                        except Exception as e:  # recorded, the Go side must fail too
                            case["error"] = type(e).__name__ + ": " + str(e)
                        out.append(case)
    return {"tools": tools, "chats": {"two_turn": two_turn, "with_system": with_system, "thinking": thinking,
                                      "reasoning_field": reasoning_field, "tool_flow": tool_flow,
                                      "deepseek_tools": deepseek_tools, "whitespace": whitespace,
                                      "single_tool": single_tool, "multimodal": multimodal},
            "specials": specials, "cases": out}


# Random expressions over Python semantics (operators, filters, tests,
# methods, undefined), rendered by jinja2: random.json.
RANDOM_VARS = {"x": 5, "s": "abcab", "l": [3, 1, 2], "d": {"k": "v", "z": 0}, "m": {"role": "user", "content": " hi "}}
ATOMS = ["1", "0", "-3", "2.5", "0.1", "'ab'", "''", "'a b'", "none", "true", "false", "[1, 2, 3]", "[]",
         "(1, 'x')", "{'k': 1, 'a': [2]}", "{}", "x", "s", "l", "d", "m", "u", "m.role", "m['content']", "l[-1]",
         "s[1:]", "l[::-1]", "d.k", "m.missing", "ns.v"]
BINOPS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">=", "in", "not in", "and", "or"]
FILTERS = ["length", "trim", "upper", "lower", "tojson", "string", "list", "first", "last", "default('D')",
           "join('-')", "int", "float", "abs", "title", "capitalize", "sort", "sum", "items | list", "unique | list",
           "reverse | list", "tojson(indent=1)", "replace('a', '')", "count", "wordcount", "dictsort"]
TESTS = ["defined", "none", "string", "mapping", "number", "sequence", "iterable", "odd", "true", "false",
         "integer", "float", "boolean"]
METHODS = ["strip()", "upper()", "split()", "split('a')", "startswith('a')", "endswith('b')", "lstrip('a')",
           "replace('a', 'z')", "items()", "keys()", "get('k')", "count(1)"]


def random_expr(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(ATOMS)
    sub = lambda: random_expr(rng, depth + 1)
    if r < 0.55:
        return "(" + sub() + " " + rng.choice(BINOPS) + " " + sub() + ")"
    if r < 0.7:
        return "(" + sub() + " | " + rng.choice(FILTERS) + ")"
    if r < 0.8:
        return "(" + sub() + " is " + rng.choice(["", "not "]) + rng.choice(TESTS) + ")"
    if r < 0.9:
        return "(" + sub() + ")." + rng.choice(METHODS)
    return "(" + sub() + " if " + sub() + " else " + sub() + ")"


def random_cases(n):
    import random
    rng = random.Random(20240726)
    cases = []
    while len(cases) < n:
        expr = random_expr(rng)
        src = "{% set ns = namespace(v=2) %}{{ " + expr + " }}"
        case = {"template": src}
        try:
            case["want"] = env().from_string(src).render(**RANDOM_VARS)
        except Exception as e:
            case["error"] = type(e).__name__ + ": " + str(e)
        # Set operations on dict views have no counterpart here.
        if "want" in case and case["want"].startswith("{(") :
            continue
        cases.append(case)
    return cases


def random_layout(rng):
    """A random mix of text, whitespace and tags with whitespace-control
    modifiers, to pin down trim_blocks, lstrip_blocks, "-" and "+"."""
    texts = ["a", "b c", " ", "  ", "\t", "\n", "\n  ", "  \n", "\n\n", " x\n", "\r\n", ""]
    out = []
    depth = []
    for _ in range(rng.randint(1, 9)):
        out.append("".join(rng.choice(texts) for _ in range(rng.randint(0, 3))))
        l = rng.choice(["", "", "-", "+"])
        r = rng.choice(["", "", "-", "+"])
        kind = rng.random()
        if kind < 0.25:
            out.append("{{" + ("-" if l == "-" else "") + " 'v' " + ("-" if r == "-" else "") + "}}")
        elif kind < 0.4:
            out.append("{#" + l + " c " + r + "#}")
        elif kind < 0.6 or not depth:
            tag = rng.choice(["if true", "for i in [1, 2]", "if false"])
            depth.append("endif" if tag.startswith("if") else "endfor")
            out.append("{%" + l + " " + tag + " " + r + "%}")
        elif kind < 0.7:
            out.append("{%" + l + " set q = 1 " + r + "%}")
        else:
            out.append("{%" + l + " " + depth.pop() + " " + r + "%}")
    while depth:
        out.append(rng.choice(["", "\n", "  "]) + "{%" + rng.choice(["", "-"]) + " " + depth.pop() + " %}")
    out.append(rng.choice(["", "\n", " \n", "z"]))
    return "".join(out)


def layout_cases(n):
    import random
    rng = random.Random(7)
    cases = []
    for _ in range(n):
        src = random_layout(rng)
        case = {"template": src}
        try:
            case["want"] = env().from_string(src).render()
        except Exception as e:
            case["error"] = type(e).__name__ + ": " + str(e)
        cases.append(case)
    return cases


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    cases = []
    for name, src, vars in CONSTRUCTS:
        case = {"name": name, "template": src, "vars": vars}
        try:
            case["want"] = env().from_string(src).render(**vars)
        except Exception as e:
            case["error"] = type(e).__name__ + ": " + str(e)
        cases.append(case)
    for name, src in PARSE_ERRORS:
        case = {"name": name, "template": src, "vars": {}}
        try:
            env().from_string(src)
            case["want"] = "unexpectedly parsed"
        except jinja2.TemplateSyntaxError as e:
            case["parse_error_line"] = e.lineno
            case["error"] = type(e).__name__ + ": " + str(e)
        cases.append(case)
    with open(os.path.join(here, "constructs.json"), "w") as f:
        json.dump({"jinja2": jinja2.__version__, "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(here, "random.json"), "w") as f:
        json.dump({"jinja2": jinja2.__version__, "vars": RANDOM_VARS, "cases": random_cases(2000),
                   "layouts": layout_cases(1000)}, f, indent=0, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(here, "chats.json"), "w") as f:
        d = chats()
        d["jinja2"] = jinja2.__version__
        json.dump(d, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
