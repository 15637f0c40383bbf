// Taking the selfie with the camera (getUserMedia); the photo becomes a JPEG file like a chosen one.

const JPEG_QUALITY = 0.92;

export class Camera {
  constructor(video) {
    this.video = video;
    this.stream = null;
  }

  get available() {
    return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
    this.video.srcObject = this.stream;
    await this.video.play();
  }

  // The current frame as a JPEG File.
  async capture() {
    const canvas = document.createElement("canvas");
    canvas.width = this.video.videoWidth;
    canvas.height = this.video.videoHeight;
    canvas.getContext("2d").drawImage(this.video, 0, 0);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    return new File([blob], "camera.jpg", { type: "image/jpeg" });
  }

  stop() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }
}
