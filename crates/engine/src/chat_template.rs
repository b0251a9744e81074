//! Chat templates: the model's own Jinja template, with built-in fallbacks.
