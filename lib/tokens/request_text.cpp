#include "tokens/request_text.hpp"

#include <simdjson.h>

namespace tlb::tokens {

Role role_from_name(std::string_view n) noexcept {
    if (n == "system") return Role::System;
    if (n == "user") return Role::User;
    if (n == "assistant") return Role::Assistant;
    if (n == "tool") return Role::Tool;
    if (n == "developer") return Role::Developer;
    if (n == "function") return Role::Function;
    return Role::Other;
}

namespace {

void add_string(simdjson::dom::element e, Role role, RequestText& out) {
    std::string_view s;
    if (e.get_string().get(s) == simdjson::SUCCESS) {
        out.texts.emplace_back(s);
        out.roles.push_back(role);
    }
}

void add_content(simdjson::dom::element content, Role role, RequestText& out) {
    if (content.is_string()) {
        add_string(content, role, out);
        return;
    }
    simdjson::dom::array parts;
    if (content.get_array().get(parts) != simdjson::SUCCESS) return;
    for (auto part : parts) {
        if (part.is_string()) {
            add_string(part, role, out);
            continue;
        }
        std::string_view type;
        if (part["type"].get_string().get(type) == simdjson::SUCCESS && type != "text") continue;
        simdjson::dom::element t;
        if (part["text"].get(t) == simdjson::SUCCESS) add_string(t, role, out);
    }
}

void add_tool(simdjson::dom::element fn, RequestText& out) {
    simdjson::dom::element e;
    if (fn["name"].get(e) == simdjson::SUCCESS) add_string(e, Role::Tool, out);
    if (fn["description"].get(e) == simdjson::SUCCESS) add_string(e, Role::Tool, out);
    if (fn["parameters"].get(e) == simdjson::SUCCESS) {
        out.texts.push_back(simdjson::minify(e));
        out.roles.push_back(Role::Tool);
    }
}

}  // namespace

bool extract_request_text(const std::string& json, RequestText& out) {
    out.texts.clear();
    out.roles.clear();
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(json).get(doc) != simdjson::SUCCESS) return false;
    simdjson::dom::object obj;
    if (doc.get_object().get(obj) != simdjson::SUCCESS) return false;
    bool any = false;
    simdjson::dom::array msgs;
    if (obj["messages"].get_array().get(msgs) == simdjson::SUCCESS) {
        any = true;
        for (auto m : msgs) {
            std::string_view rn;
            const Role role = m["role"].get_string().get(rn) == simdjson::SUCCESS ? role_from_name(rn) : Role::Other;
            simdjson::dom::element c;
            if (m["content"].get(c) == simdjson::SUCCESS) add_content(c, role, out);
            // Assistant tool calls: function name and arguments (a JSON string), as lib/openai.
            simdjson::dom::array calls;
            if (m["tool_calls"].get_array().get(calls) == simdjson::SUCCESS) {
                for (auto call : calls) {
                    simdjson::dom::element fn, e;
                    if (call["function"].get(fn) != simdjson::SUCCESS) continue;
                    if (fn["name"].get(e) == simdjson::SUCCESS) add_string(e, role, out);
                    if (fn["arguments"].get(e) == simdjson::SUCCESS) add_string(e, role, out);
                }
            }
        }
    }
    simdjson::dom::element prompt;
    if (obj["prompt"].get(prompt) == simdjson::SUCCESS) {
        any = true;
        if (prompt.is_string()) add_string(prompt, Role::None, out);
        else {
            simdjson::dom::array a;
            if (prompt.get_array().get(a) == simdjson::SUCCESS)
                for (auto p : a) add_string(p, Role::None, out);
        }
    }
    simdjson::dom::array tools;
    if (obj["tools"].get_array().get(tools) == simdjson::SUCCESS) {
        for (auto t : tools) {
            simdjson::dom::element fn;
            if (t["function"].get(fn) == simdjson::SUCCESS) add_tool(fn, out);
        }
    }
    simdjson::dom::array fns;
    if (obj["functions"].get_array().get(fns) == simdjson::SUCCESS)
        for (auto f : fns) add_tool(f, out);
    return any;
}

}  // namespace tlb::tokens
