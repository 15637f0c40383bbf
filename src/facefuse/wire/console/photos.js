// A photo over the API's size rules is shrunk in the browser before it is sent: phone cameras
// take photos of several megabytes, and a selfie needs far fewer pixels than that.

const MAX_BYTES = 2 * 1024 * 1024; // docs/api.md part A, the image rules
const MAX_SIDE = 4096;
const SHRUNK_SIDE = 2048;
const JPEG_QUALITY = 0.92;

// The file as it is when the API takes its size, else a JPEG of it with the long side SHRUNK_SIDE.
export async function fitForApi(file) {
  if (!/^image\/(jpeg|png)$/.test(file.type)) return { file, shrunk: false }; // the service says why not
  let bitmap;
  try {
    bitmap = await createImageBitmap(file); // EXIF orientation applied, as the service applies it
  } catch {
    return { file, shrunk: false }; // not decodable here: the service says why
  }
  if (file.size <= MAX_BYTES && Math.max(bitmap.width, bitmap.height) <= MAX_SIDE) {
    bitmap.close();
    return { file, shrunk: false };
  }
  const scale = Math.min(1, SHRUNK_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  const name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
  return { file: new File([blob], name, { type: "image/jpeg" }), shrunk: true };
}
