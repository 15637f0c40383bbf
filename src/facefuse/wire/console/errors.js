// Every API error in plain words; the code, its name and the service's detail are shown beside them.
// The codes are docs/api.md part E (src/facefuse/errors.py is the one table).

const PLAIN = {
  0: "The service could not be reached.",
  10001: "The request was not valid JSON.",
  10002: "Something the request needs is missing.",
  10003: "A value in the request is not allowed.",
  10004: "The image could not be read as base64 data.",
  10005: "That file is not a JPG or PNG image.",
  10006: "That image file is too large: at most 2 MB.",
  10007: "That image is too small or too large: each side must be 48 to 4096 pixels.",
  10008: "That image file is damaged or cut short.",
  10009: "The image link could not be downloaded.",
  10010: "That image link is not allowed.",
  10011: "There is no such template (it may have been deleted).",
  10101: "Sign in with an API key and its secret.",
  10102: "The API key or its secret is wrong, or the key was revoked.",
  10103: "This needs an admin key.",
  10104: "Not found: it may have been deleted.",
  10105: "The service does not take that kind of request here.",
  10106: "The request is too large.",
  10201: "Too many requests a second for this key; wait a moment and try again.",
  10202: "This key's daily quota is used up; it renews at 00:00 UTC.",
  10301: "The service is busy or still starting; try again in a moment.",
  10302: "The service took too long; try again.",
  20001: "The service could not process this photo.",
  20003: "No face was found in your photo. Use a photo where one face is clearly visible.",
  20020: "Part of the face (eyes, nose or mouth) is outside your photo. Step back or crop less tightly.",
  20021: "The head is tilted up or down too far. Look straight at the camera.",
  20022: "The head is turned sideways too far. Look straight at the camera.",
  20023: "The face in your photo is too small. Move closer or crop the photo around the face.",
  220003: "No face was found in the template photo.",
};

export function plainWords(error) {
  return error.words || PLAIN[error.code] || "The request failed.";
}

// A problem found in the browser, before anything was sent: plain words only, no code.
export function localProblem(words) {
  return { code: 0, errorName: "", detail: "", words };
}

// Fill `box` (a role="alert" element) with the error in plain words and its code.
export function showError(box, error) {
  box.replaceChildren();
  const words = document.createElement("p");
  words.className = "error-words";
  words.textContent = plainWords(error);
  box.append(words);
  if (error.code || error.errorName) {
    const code = document.createElement("p");
    code.className = "error-code";
    code.textContent = error.code ? `Code ${error.code} ${error.errorName}` : error.errorName;
    if (error.detail) code.textContent += ` — ${error.detail}`;
    box.append(code);
  }
  box.hidden = false;
}

export function clearError(box) {
  box.replaceChildren();
  box.hidden = true;
}
