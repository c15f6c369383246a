/** A crescent moon (a lit disc with a night disc over it); layout.ts draws the same in the header. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#2c1f63"/><circle cx="15" cy="17" r="10" fill="#f4b942"/><circle cx="20.5" cy="12.5" r="8" fill="#2c1f63"/></svg>
`;
