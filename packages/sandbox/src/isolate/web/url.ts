/**
 * `URL` and `URLSearchParams` (WHATWG URL Standard, with IDNA host names) from core-js-pure, bundled
 * into the runtime at build time. core-js keeps a registry on a global (`__core-js_shared__`); the
 * runtime removes it after install, so its state stays in the bundle's closure.
 */
import URLImpl from 'core-js-pure/actual/url/index.js';
import URLSearchParamsImpl from 'core-js-pure/actual/url-search-params/index.js';

export const URL = URLImpl as unknown as typeof globalThis.URL;
export const URLSearchParams = URLSearchParamsImpl as unknown as typeof globalThis.URLSearchParams;
/** Globals core-js may leave behind while loading. */
export const CORE_JS_GLOBALS = ['__core-js_shared__'];
